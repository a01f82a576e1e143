"""A failing peer is reported at INFO during the grace period, then at WARNING."""

from __future__ import annotations

import logging

import pytest

from data_plane.cluster.patience import Patience


class SteppedClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_streak_is_quiet_for_the_grace_then_warns(caplog: pytest.LogCaptureFixture) -> None:
    clock = SteppedClock()
    patience = Patience(logging.getLogger("peer"), grace=10.0, clock=clock)
    caplog.set_level(logging.INFO, "peer")
    assert patience.failed("control plane at %s unreachable", "x") == logging.INFO
    clock.now += 9.9
    assert patience.failed("control plane at %s unreachable", "x") == logging.INFO
    clock.now += 0.1
    assert patience.failed("control plane at %s unreachable", "x") == logging.WARNING
    failing_before = patience.failing
    patience.succeeded("control plane at %s answers again", "x")
    assert (failing_before, patience.failing) == (True, False)
    # A success ends the streak: the next failure is quiet again.
    clock.now += 100.0
    assert patience.failed("control plane at %s unreachable", "x") == logging.INFO
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "control plane at x unreachable (retrying)"),
        (logging.INFO, "control plane at x unreachable (retrying)"),
        (logging.WARNING, "control plane at x unreachable (still failing after 10 s)"),
        (logging.INFO, "control plane at x answers again"),
        (logging.INFO, "control plane at x unreachable (retrying)"),
    ]


def test_a_quiet_recovery_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    clock = SteppedClock()
    patience = Patience(logging.getLogger("peer"), grace=10.0, clock=clock)
    caplog.set_level(logging.INFO, "peer")
    patience.failed("starting")
    patience.succeeded("recovered")
    assert [r.getMessage() for r in caplog.records] == ["starting (retrying)"]
