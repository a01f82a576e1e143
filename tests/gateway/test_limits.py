"""Token buckets with an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from data_plane.gateway.limits import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(5, clock)
    assert [bucket.allow() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.2  # one token back
    assert bucket.allow()
    assert not bucket.allow()
    clock.now += 10  # never more than one second's worth
    assert sum(bucket.allow() for _ in range(10)) == 5


def test_fractional_rate_allows_one_then_waits() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, clock)
    assert bucket.allow()
    assert not bucket.allow()
    clock.now += 1.9
    assert not bucket.allow()
    clock.now += 0.2
    assert bucket.allow()


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, Clock())
