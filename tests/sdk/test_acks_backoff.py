"""Batched acks and reconnect back-off, with an injected clock and random source."""

from __future__ import annotations

import pytest

from cirno_sdk.acks import AckBatcher
from cirno_sdk.backoff import Backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ack_is_due_after_every_n_messages_with_the_newest_id() -> None:
    acks = AckBatcher(interval=0.5, every=3, clock=FakeClock())
    assert not acks.due()
    assert not acks.stored(1)
    assert not acks.stored(2)
    assert acks.stored(3)
    assert acks.due()
    assert acks.take() == 3
    assert not acks.due()
    assert acks.take() == 0


def test_ack_is_due_after_the_interval_since_the_first_unacked() -> None:
    clock = FakeClock()
    acks = AckBatcher(interval=0.5, every=50, clock=clock)
    assert acks.deadline() is None
    acks.stored(7)
    clock.now = 0.3
    acks.stored(8)
    assert acks.deadline() == 0.5
    assert not acks.due()
    clock.now = 0.5
    assert acks.due()
    assert acks.take() == 8
    assert acks.deadline() is None


def test_failed_ack_stays_pending_unless_newer_came() -> None:
    clock = FakeClock()
    acks = AckBatcher(interval=1.0, every=2, clock=clock)
    acks.stored(1)
    acks.stored(2)
    taken = acks.take()
    acks.failed(taken)
    assert acks.pending == 2
    assert not acks.due()
    clock.now = 1.0
    assert acks.due()
    assert acks.take() == 2
    acks.stored(3)
    acks.failed(2)
    assert acks.pending == 3


def test_ack_batcher_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AckBatcher(interval=0, every=1)
    with pytest.raises(ValueError):
        AckBatcher(interval=1, every=0)


def test_backoff_grows_exponentially_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, multiplier=2.0, jitter=0.5, rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.attempts == 6
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_takes_off_up_to_its_fraction() -> None:
    draws = iter([0.0, 0.5, 0.999])
    backoff = Backoff(initial=2.0, maximum=2.0, jitter=0.5, rng=lambda: next(draws))
    delays = [backoff.next_delay() for _ in range(3)]
    assert delays[0] == 2.0
    assert delays[1] == 1.5
    assert 1.0 < delays[2] < 1.01


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=2.0, maximum=1.0)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
