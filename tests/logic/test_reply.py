"""Answers larger than the client's packet limit become TooLarge, not unreadable packets."""

from __future__ import annotations

import pytest

from data_plane.logic.context import Request
from data_plane.wire import Command, LogicPacket, Status, decode_packet, pb
from tests.capture import Capture

pytestmark = pytest.mark.anyio


def request(conn: Capture, limit: int) -> Request:
    packet = LogicPacket.request(Command.CHAT_GROUP_MEMBERS, sequence=7, channel_id="ch")
    return Request(packet, "t", "a", "d", "ch", "gw", "", conn, max_answer_size=limit)


async def test_an_answer_over_the_limit_becomes_too_large() -> None:
    conn = Capture()
    big = pb.GroupMembersResp()
    for i in range(200):
        big.members.add(account=f"member-{i:04d}")
    request(conn, limit=1024).reply(body=big)
    answer = decode_packet(conn.sent[0])
    assert isinstance(answer, LogicPacket)
    assert (answer.status, answer.sequence) == (Status.TOO_LARGE, 7)
    assert "packet limit" in answer.parse_body(pb.ErrorResp).message


async def test_an_answer_within_the_limit_is_sent_as_is() -> None:
    conn = Capture()
    request(conn, limit=64 * 1024).reply(body=pb.GroupMembersResp(member_count=3))
    answer = decode_packet(conn.sent[0])
    assert isinstance(answer, LogicPacket)
    assert answer.status == Status.SUCCESS
    assert answer.parse_body(pb.GroupMembersResp).member_count == 3
