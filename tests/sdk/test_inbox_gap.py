"""Inbox-gap detection in the orderer (1:1 pushes carrying ``inbox_seq``), no sockets.

A 1:1 push whose inbox sequence is beyond the next expected one means an earlier push was
lost (or the slot is a group message): the push and everything after it wait for a sync,
which delivers the missing messages first; nothing comes twice.
"""

from __future__ import annotations

import dataclasses

from cirno_sdk.models import Direction, Message
from tests.sdk.test_ordering import Harness, grp


def wants(h: Harness) -> bool:
    """Whether the orderer asks for a sync (a function, so mypy does not narrow it)."""
    return h.orderer.wants_sync


def syncing(h: Harness) -> bool:
    """Whether pushes are being buffered."""
    return h.orderer.syncing


def top(h: Harness) -> int | None:
    """The inbox sequence up to which everything is known."""
    return h.orderer.inbox_seq


def msg(message_id: int, inbox_seq: int) -> Message:
    """A received 1:1 message at ``inbox_seq`` of our inbox."""
    return Message(
        message_id, "alice", "bob", "", 1, f"m{message_id}", "", message_id, inbox_seq=inbox_seq
    )


def group_at(message_id: int, inbox_seq: int, seq: int = 0) -> Message:
    """A group message as the sync returns it: it has our inbox's sequence."""
    return dataclasses.replace(grp(message_id, seq=seq), inbox_seq=inbox_seq)


def synced_to(h: Harness, last: int) -> None:
    """A first sync that walked our inbox up to ``last`` (messages 1..last)."""
    h.sync(*(msg(i, i) for i in range(1, last + 1)))
    assert top(h) == last


def test_no_gap_pushes_pass_straight_through() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(msg(3, 3)) == [3]
    assert h.push(msg(4, 4)) == [4]
    assert not wants(h)
    assert not syncing(h)
    assert top(h) == 4


def test_a_gap_buffers_the_push_and_later_ones_until_a_sync_fills_it() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(msg(4, 4)) == []  # 3's push was lost
    assert wants(h)
    assert h.push(msg(5, 5)) == []  # no overtaking the missing message
    # The sync walks 3, 4, 5; 4 and 5 are pending pushes (their content is not fetched).
    assert h.orderer.pending(4) is not None and h.orderer.pending(5) is not None
    assert h.sync(msg(3, 3), msg(4, 4), msg(5, 5)) == [3, 4, 5]
    assert [m.message_id for m in h.delivered] == [1, 2, 3, 4, 5]
    assert top(h) == 5
    assert not wants(h) and not syncing(h)
    assert h.push(msg(6, 6)) == [6]


def test_a_gap_of_group_messages_costs_a_sync_and_delivers_nothing_twice() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(grp(10, seq=1)) == [10]  # took inbox seq 3, the push does not say so
    assert h.push(msg(4, 4)) == []
    assert wants(h)
    # The sync finds only what the client already has.
    assert h.sync(group_at(10, 3), msg(4, 4)) == [4]
    assert [m.message_id for m in h.delivered] == [1, 2, 10, 4]
    assert top(h) == 4
    assert h.orderer.last_seq("g") == 1


def test_duplicate_pushes_are_dropped_and_count_as_known() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(msg(2, 2)) == []
    assert h.push(msg(3, 3)) == [3]
    assert h.push(msg(3, 3)) == []
    assert h.push(msg(5, 5)) == []
    assert h.push(msg(5, 5)) == []  # the same lost-gap push twice is buffered twice...
    assert h.sync(msg(3, 3), msg(4, 4), msg(5, 5)) == [4, 5]  # ...and delivered once
    assert [m.message_id for m in h.delivered] == [1, 2, 3, 4, 5]


def test_our_own_receipt_fills_its_slot() -> None:
    h = Harness()
    synced_to(h, 2)
    h.orderer.own_inbox(3)
    assert h.push(msg(4, 4)) == [4]
    assert not wants(h)
    # A receipt ahead of a push still in flight is remembered, not a gap by itself.
    h.orderer.own_inbox(6)
    assert not wants(h)
    assert h.push(msg(5, 5)) == [5]
    assert top(h) == 6
    assert h.push(msg(7, 7)) == [7]


def test_without_a_baseline_the_first_push_waits_for_one_sync() -> None:
    h = Harness()
    h.sync()  # an empty first sync (nothing after the cursor) tells us nothing
    assert top(h) is None
    h.orderer.own_inbox(5)  # a receipt alone does not set it either
    assert h.push(msg(7, 7)) == []
    assert wants(h)
    assert h.push(msg(8, 8)) == []
    # The sync finds 6 (its push was lost) before 7 and 8; 5 is our own, stored already.
    assert h.sync(msg(6, 6), msg(7, 7), msg(8, 8)) == [6, 7, 8]
    assert top(h) == 8
    assert h.push(msg(9, 9)) == [9]
    assert not wants(h)


def test_pushes_without_an_inbox_seq_are_never_held() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(msg(9, 0)) == [9]  # an older server
    assert not wants(h)


def test_a_gap_the_sync_does_not_fill_is_released_without_a_loop() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(msg(5, 5)) == []
    assert h.sync() == [5]
    assert not wants(h) and not syncing(h)


def test_a_new_gap_during_the_fill_sync_asks_for_another() -> None:
    h = Harness()
    synced_to(h, 2)
    assert h.push(msg(4, 4)) == []
    h.orderer.start_sync()
    assert not wants(h)
    assert h.push(msg(7, 7)) == []  # arrives during the sync; 5 and 6 were lost too
    assert h.take(h.orderer.synced([msg(3, 3), msg(4, 4)])) == [3, 4]
    assert h.take(h.orderer.finish_sync()) == []
    assert wants(h) and syncing(h)
    assert h.push(msg(8, 8)) == []
    assert h.sync(msg(5, 5), msg(6, 6), msg(7, 7), msg(8, 8)) == [5, 6, 7, 8]
    assert [m.message_id for m in h.delivered] == list(range(1, 9))
    assert not wants(h)


def test_a_push_of_our_own_message_from_another_device_counts_too() -> None:
    h = Harness()
    synced_to(h, 2)
    own = dataclasses.replace(msg(3, 3), sender="bob", to="alice", direction=Direction.SENT)
    assert h.push(own) == [3]
    assert h.push(msg(4, 4)) == [4]
    assert not wants(h)
