"""Snowflake ids: unique, strictly increasing, distinct per node, robust to clock steps."""

from __future__ import annotations

import itertools

import pytest

from data_plane.storage.ids import EPOCH_MS, MAX_SEQUENCE, SnowflakeIds, wall_clock_ms


class FakeClock:
    """A settable ms clock."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_unique_and_increasing_over_100k_ids() -> None:
    ids = SnowflakeIds(7)
    generated = [ids.next_id() for _ in range(100_000)]
    assert len(set(generated)) == len(generated)
    assert all(a < b for a, b in itertools.pairwise(generated))
    assert all(0 < i < 2**63 for i in (generated[0], generated[-1]))


def test_two_nodes_never_collide_on_the_same_clock() -> None:
    clock = FakeClock(EPOCH_MS + 1_000)
    one, two = SnowflakeIds(1, clock=clock), SnowflakeIds(2, clock=clock)
    first = {one.next_id() for _ in range(20_000)}
    second = {two.next_id() for _ in range(20_000)}
    assert len(first) == len(second) == 20_000
    assert not first & second
    assert {SnowflakeIds.node_of(i) for i in first} == {1}
    assert {SnowflakeIds.node_of(i) for i in second} == {2}


def test_monotonic_when_the_clock_steps_back() -> None:
    clock = FakeClock(EPOCH_MS + 10_000)
    ids = SnowflakeIds(3, clock=clock)
    before = ids.next_id()
    clock.now -= 5_000
    after = [ids.next_id() for _ in range(10)]
    assert all(before < i for i in after)
    assert after == sorted(after)
    clock.now += 10_000
    assert ids.next_id() > after[-1]


def test_a_used_up_millisecond_borrows_the_next() -> None:
    clock = FakeClock(EPOCH_MS + 500)
    ids = SnowflakeIds(4, clock=clock)
    generated = [ids.next_id() for _ in range(MAX_SEQUENCE + 3)]
    assert generated == sorted(set(generated))
    assert SnowflakeIds.time_of(generated[0]) == clock.now
    assert SnowflakeIds.time_of(generated[-1]) == clock.now + 1


def test_time_of_and_node_of() -> None:
    clock = FakeClock(EPOCH_MS + 123_456_789)
    snowflake = SnowflakeIds(1023, clock=clock).next_id()
    assert SnowflakeIds.time_of(snowflake) == EPOCH_MS + 123_456_789
    assert SnowflakeIds.node_of(snowflake) == 1023
    real = SnowflakeIds(0).next_id()
    assert abs(SnowflakeIds.time_of(real) - wall_clock_ms()) < 5_000


@pytest.mark.parametrize("node_id", [-1, 1024])
def test_node_id_out_of_range(node_id: int) -> None:
    with pytest.raises(ValueError):
        SnowflakeIds(node_id)
