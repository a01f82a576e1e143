"""The per-channel sequencer (pure): in order, holes held then filled, duplicates
dropped, bounded, own sends counted."""

from __future__ import annotations

import pytest

from data_plane.gateway.sequencer import Overflow, Sequencer


def test_in_order_rows_go_straight_through() -> None:
    s = Sequencer(head=4)
    assert s.next_seq == 5
    assert s.offer(5, b"five") == [b"five"]
    assert s.offer(6, b"six") == [b"six"]
    assert s.hole() is None and s.held == 0


def test_a_hole_holds_what_follows_until_it_is_filled() -> None:
    s = Sequencer(head=0)
    assert s.offer(1, b"1") == [b"1"]
    assert s.offer(3, b"3") == []
    assert s.offer(4, b"4") == []
    assert s.hole() == (2, 2)
    assert s.held == 2
    assert s.offer(2, b"2") == [b"2", b"3", b"4"]
    assert s.hole() is None and s.held == 0 and s.next_seq == 5


def test_duplicates_are_dropped_before_and_inside_the_window() -> None:
    s = Sequencer(head=10)
    assert s.offer(10, b"old") is None  # at or below the login head: the client syncs it
    assert s.offer(11, b"a") == [b"a"]
    assert s.offer(11, b"a") is None
    assert s.offer(13, b"c") == []
    assert s.offer(13, b"c") is None
    assert s.held == 1


def test_own_sends_take_their_rows_without_a_packet() -> None:
    s = Sequencer(head=0)
    assert s.offer(2, b"2") == []  # pushed before the answer to the own send came
    assert s.offer(1, None) == [b"2"]
    assert s.offer(3, None) == []
    assert s.next_seq == 4
    assert s.offer(5, None) == []
    assert s.hole() == (4, 4)
    assert s.offer(4, b"4") == [b"4"]
    assert s.next_seq == 6


def test_a_head_above_the_stream_is_a_hole() -> None:
    s = Sequencer(head=3)
    s.learn_head(3)
    assert s.hole() is None
    s.learn_head(6)
    assert s.hole() == (4, 6)
    assert s.offer(4, b"4") == [b"4"]
    assert s.hole() == (5, 6)


def test_overflow_by_count_and_by_bytes() -> None:
    s = Sequencer(0, max_held=2, max_bytes=100)
    s.offer(2, b"x")
    s.offer(3, b"x")
    with pytest.raises(Overflow):
        s.offer(4, b"x")
    big = Sequencer(0, max_held=10, max_bytes=100)
    big.offer(2, b"x" * 60)
    with pytest.raises(Overflow):
        big.offer(3, b"x" * 60)


def test_a_sync_answer_counts_its_rows_as_delivered() -> None:
    s = Sequencer(head=0)
    assert s.offer(1, b"1") == [b"1"]
    assert s.offer(4, b"4") == []
    assert s.offer(6, b"6") == []
    assert s.synced([1, 2, 3, 4]) == []  # 4 came by sync too: its held push is dropped
    assert s.next_seq == 5 and s.held == 1
    assert s.offer(4, b"4") is None
    assert s.offer(5, b"5") == [b"5", b"6"]
