"""SDK ordering fixes the integrity harness called for (see cirno_sdk/ordering.py).

Under load with several logic nodes, pushes of one group come over different links:
(1) our own message's receipt can arrive before pushes of messages committed just
before it, so its slot must be the sequence the receipt names, not "the next free one";
(2) the first two pushes of a new group can arrive in reverse order, so a group
created while we are online starts at 0 instead of at its first push.
"""

from __future__ import annotations

from tests.sdk.test_ordering import Harness, grp


def own(h: Harness, message_id: int, seq: int) -> list[int]:
    """Our own group message was acknowledged with ``seq`` (the client stores it)."""
    h.delivered.append(grp(message_id, seq=seq))
    return h.take(h.orderer.own_sent("g", message_id, seq))


def test_own_message_takes_its_exact_slot_not_the_next_free_one() -> None:
    h = Harness()
    assert h.push(grp(22, seq=22)) == [22]
    assert own(h, 25, seq=25) == []
    assert h.push(grp(24, seq=24)) == []  # 23 is still missing: held
    assert h.push(grp(23, seq=23)) == [23, 24]
    assert h.push(grp(26, seq=26)) == [26]


def test_own_message_right_after_the_last_moves_the_sequence_on() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    assert own(h, 11, seq=2) == []
    assert h.push(grp(12, seq=3)) == [12]


def test_own_slot_releases_held_pushes() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    assert h.push(grp(13, seq=3)) == []
    assert own(h, 12, seq=2) == [13]


def test_synced_messages_around_our_own_get_the_right_sequence() -> None:
    h = Harness()
    h.push(grp(10, seq=1))
    own(h, 12, seq=3)
    assert h.sync(grp(11), grp(12), grp(13)) == [11, 13]
    assert [m.seq for m in h.delivered if m.message_id in (11, 13)] == [2, 4]


def test_a_group_created_while_online_starts_at_zero() -> None:
    h = Harness()
    h.orderer.group_created("g")
    assert h.push(grp(2, seq=2)) == []
    assert h.push(grp(1, seq=1)) == [1, 2]


def test_created_does_not_reset_a_known_group() -> None:
    h = Harness()
    h.push(grp(5, seq=5))
    h.orderer.group_created("g")
    assert h.push(grp(6, seq=6)) == [6]
