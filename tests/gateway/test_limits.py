"""Token buckets and keyed buckets with an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from data_plane.gateway.limits import KeyedBuckets, TokenBucket, resolve


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


def test_burst_may_exceed_one_second() -> None:
    clock = Clock()
    bucket = TokenBucket(2, clock, burst=10)
    assert sum(bucket.allow() for _ in range(20)) == 10
    clock.now += 1.0
    assert sum(bucket.allow() for _ in range(20)) == 2


def test_keyed_buckets_are_independent_and_zero_is_unlimited() -> None:
    clock = Clock()
    buckets: KeyedBuckets[str] = KeyedBuckets(clock)
    assert sum(buckets.allow("a", 3) for _ in range(10)) == 3
    assert sum(buckets.allow("b", 3) for _ in range(10)) == 3
    assert all(buckets.allow("c", 0) for _ in range(1000))
    assert len(buckets) == 2  # unlimited keys cost nothing
    clock.now += 1.0
    assert sum(buckets.allow("a", 3) for _ in range(10)) == 3


def test_a_changed_rate_starts_the_key_over() -> None:
    clock = Clock()
    buckets: KeyedBuckets[str] = KeyedBuckets(clock)
    assert sum(buckets.allow("a", 2) for _ in range(5)) == 2
    assert sum(buckets.allow("a", 4) for _ in range(5)) == 4


def test_keyed_buckets_stay_bounded_under_many_active_keys() -> None:
    clock = Clock()
    buckets: KeyedBuckets[str] = KeyedBuckets(clock, max_keys=100)
    for key in range(1000):
        assert buckets.allow(f"ip{key}", 1)  # each spends its token: none refilled
    assert len(buckets) <= 100


def test_refilled_keys_are_forgotten_before_active_ones() -> None:
    clock = Clock()
    buckets: KeyedBuckets[str] = KeyedBuckets(clock, max_keys=10)
    for key in range(9):
        buckets.allow(f"old{key}", 1)
    clock.now += 5.0  # the nine have refilled: a fresh bucket is the same as theirs
    assert buckets.allow("active", 1)
    assert len(buckets) == 10  # the table is full
    assert buckets.allow("new", 1)  # prunes the refilled keys only
    assert len(buckets) == 2
    assert not buckets.allow("active", 1)  # still remembered as spent


def test_resolve_uses_the_override_only_when_set() -> None:
    assert resolve(None, 50.0) == 50.0
    assert resolve(0.0, 50.0) == 0.0  # explicitly unlimited
    assert resolve(5.0, 50.0) == 5.0
