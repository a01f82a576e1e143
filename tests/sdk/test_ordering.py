"""The orderer without sockets: de-duplication, sync buffering, group gaps."""

from __future__ import annotations

from cirno_sdk.models import Message
from cirno_sdk.ordering import Orderer


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """An orderer plus the store it consults (the ids delivered so far)."""

    def __init__(self, gap_wait: float = 2.0) -> None:
        self.clock = FakeClock()
        self.delivered: list[Message] = []
        self.orderer = Orderer(
            is_known=lambda mid: any(m.message_id == mid for m in self.delivered),
            gap_wait=gap_wait,
            clock=self.clock,
        )

    def take(self, messages: list[Message]) -> list[int]:
        self.delivered.extend(messages)
        return [m.message_id for m in messages]

    def push(self, message: Message) -> list[int]:
        return self.take(self.orderer.push(message))

    def sync(self, *batch: Message) -> list[int]:
        self.orderer.start_sync()
        out = self.take(self.orderer.synced(list(batch)))
        return out + self.take(self.orderer.finish_sync())


def chat(message_id: int) -> Message:
    return Message(message_id, "alice", "bob", "", 1, f"m{message_id}", "", message_id)


def grp(message_id: int, seq: int = 0, group: str = "g") -> Message:
    return Message(message_id, "carol", "", group, 1, f"g{message_id}", "", message_id, seq)


def test_live_pushes_are_delivered_at_once_and_once() -> None:
    h = Harness()
    assert h.push(chat(1)) == [1]
    assert h.push(chat(2)) == [2]
    assert h.push(chat(1)) == []


def test_pushes_during_a_sync_wait_for_it_and_duplicates_drop() -> None:
    h = Harness()
    h.orderer.start_sync()
    assert h.push(chat(5)) == []
    assert h.push(chat(6)) == []
    assert h.take(h.orderer.synced([chat(3), chat(4), chat(5)])) == [3, 4, 5]
    assert h.take(h.orderer.finish_sync()) == [6]
    assert not h.orderer.syncing


def test_sync_skips_what_pushes_delivered() -> None:
    h = Harness()
    h.push(chat(1))
    h.push(chat(2))
    assert h.sync(chat(1), chat(2), chat(3)) == [3]


def test_group_pushes_in_sequence_pass_straight_through() -> None:
    h = Harness()
    assert h.push(grp(10, seq=1)) == [10]
    assert h.push(grp(11, seq=2)) == [11]
    assert h.orderer.last_seq("g") == 2
    assert not h.orderer.wants_sync


def test_a_gap_holds_later_messages_until_a_sync_fills_it() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    assert h.push(grp(13, seq=4)) == []
    assert h.push(grp(12, seq=3)) == []
    assert h.orderer.wants_sync
    # The sync returns the inbox in order; it has no group seq, the orderer infers it.
    assert h.sync(grp(10), grp(11), grp(12), grp(13)) == [11, 12, 13]
    assert [m.seq for m in h.delivered] == [1, 2, 3, 4]
    assert h.orderer.last_seq("g") == 4


def test_gap_closed_by_a_late_push() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    assert h.push(grp(12, seq=3)) == []
    assert h.push(grp(11, seq=2)) == [11, 12]


def test_a_gap_the_sync_cannot_fill_is_released_after_it() -> None:
    """E.g. a message stored while we were not a member: the sync shows the gap is real."""
    h = Harness()
    h.push(grp(10, seq=1))
    h.push(grp(20, seq=5))
    assert h.sync(grp(10), grp(20)) == [20]
    assert h.orderer.last_seq("g") == 5
    assert h.push(grp(21, seq=6)) == [21]


def test_a_gap_is_released_after_gap_wait() -> None:
    h = Harness(gap_wait=2.0)
    h.push(grp(10, seq=1))
    h.push(grp(13, seq=4))
    assert h.orderer.next_deadline() == 102.0
    h.clock.now = 101.9
    assert h.take(h.orderer.expire()) == []
    h.clock.now = 102.0
    assert h.take(h.orderer.expire()) == [13]
    assert h.orderer.next_deadline() is None


def test_expiry_waits_while_a_sync_runs() -> None:
    h = Harness(gap_wait=1.0)
    h.push(grp(10, seq=1))
    h.push(grp(13, seq=4))
    h.orderer.start_sync()
    h.clock.now = 200.0
    assert h.orderer.expire() == []
    assert h.take(h.orderer.synced([grp(11), grp(12), grp(13)])) == [11, 12, 13]


def test_first_push_of_a_group_sets_the_baseline() -> None:
    h = Harness()
    assert h.push(grp(50, seq=42)) == [50]
    assert h.push(grp(52, seq=44)) == []


def test_our_own_messages_fill_their_slots() -> None:
    """Our own group messages are not pushed back to us; they are not a gap."""
    h = Harness()
    h.push(grp(10, seq=1))
    h.orderer.own_sent("g", 11)
    h.delivered.append(grp(11))  # the client stores its own message
    assert h.push(grp(12, seq=3)) == [12]
    assert not h.orderer.wants_sync


def test_own_messages_seen_in_a_sync_keep_the_count() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    h.orderer.own_sent("g", 11)
    h.delivered.append(grp(11))
    assert h.sync(grp(10), grp(11), grp(12)) == [12]
    assert h.delivered[-1].seq == 3


def test_held_push_returned_by_the_sync_keeps_its_seq_and_comes_once() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    h.push(grp(12, seq=3))
    assert h.orderer.pending(12) is not None
    assert h.sync(grp(11), grp(12)) == [11, 12]
    assert [m.seq for m in h.delivered] == [1, 2, 3]
    assert h.orderer.pending(12) is None


def test_buffered_group_push_tells_the_sync_where_the_sequence_stands() -> None:
    h = Harness()
    h.orderer.start_sync()
    h.push(grp(31, seq=8))
    h.take(h.orderer.synced([grp(30), grp(31)]))
    assert [m.seq for m in h.delivered] == [0, 8]
    assert h.take(h.orderer.finish_sync()) == []
    assert h.push(grp(32, seq=9)) == [32]


def test_groups_are_independent() -> None:
    h = Harness()
    h.push(grp(1, seq=1, group="a"))
    h.push(grp(2, seq=1, group="b"))
    assert h.push(grp(3, seq=3, group="a")) == []
    assert h.push(grp(4, seq=2, group="b")) == [4]


def test_reset_group_forgets_the_sequence() -> None:
    h = Harness()
    h.push(grp(1, seq=1))
    h.orderer.reset_group("g")
    assert h.push(grp(9, seq=7)) == [9]
