"""The kim mapping as a table: statuses a kim SDK survives, times in nanoseconds."""

from __future__ import annotations

from data_plane.gateway.kim_compat import (
    NANOSECONDS_PER_MILLISECOND,
    for_kim,
    is_kim_client,
    kim_status,
)
from data_plane.wire import Command, LogicPacket, Status, pb


def test_every_status_a_kim_client_gets_is_one_its_sdk_survives() -> None:
    for status in Status:
        mapped = kim_status(status)
        if status == Status.SESSION_NOT_FOUND:
            assert mapped == status  # the session really is gone: kim's own meaning
        else:
            assert mapped < 400, status
    assert kim_status(Status.NOT_FOUND) == Status.NO_DESTINATION
    assert kim_status(Status.RATE_LIMITED) == Status.SYSTEM_EXCEPTION
    assert kim_status(499) == Status.SYSTEM_EXCEPTION  # a code this table never heard of
    assert [kim_status(s) for s in (0, 100, 105, 300, 301)] == [0, 100, 105, 300, 301]


def test_the_reason_is_kept_and_an_empty_one_is_filled() -> None:
    request = LogicPacket.request(Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id="g"))
    refused = for_kim(request.error_response(Status.NOT_FOUND, "group g does not exist"))
    assert refused is not None and refused.status == Status.NO_DESTINATION
    assert refused.parse_body(pb.ErrorResp).message == "group g does not exist"
    bare = for_kim(request.response(Status.UNAVAILABLE))
    assert bare is not None and bare.parse_body(pb.ErrorResp).message == "status 503"


def test_send_time_becomes_nanoseconds_and_the_rest_passes_untouched() -> None:
    talk = LogicPacket.request(Command.CHAT_USER_TALK, b"", dest="bob")
    answer = talk.response(Status.SUCCESS, pb.MessageResp(messageId=7, sendTime=1_700_000_000_123))
    kim = for_kim(answer)
    assert kim is not None
    assert (
        kim.parse_body(pb.MessageResp).sendTime == 1_700_000_000_123 * NANOSECONDS_PER_MILLISECOND
    )
    assert kim.parse_body(pb.MessageResp).messageId == 7
    push = LogicPacket.make_push(Command.CHAT_GROUP_TALK, pb.MessagePush(sendTime=5), dest="g")
    pushed = for_kim(push)
    assert pushed is not None and pushed.parse_body(pb.MessagePush).sendTime == 5_000_000
    index = LogicPacket.request(Command.CHAT_OFFLINE_INDEX).response(
        Status.SUCCESS, pb.MessageIndexResp(indexes=[pb.MessageIndex(message_id=1, send_time=2)])
    )
    paged = for_kim(index)
    assert paged is not None
    assert paged.parse_body(pb.MessageIndexResp).indexes[0].send_time == 2_000_000
    ack = LogicPacket.request(Command.CHAT_TALK_ACK).response(Status.SUCCESS)
    assert for_kim(ack) is None  # nothing to change: the logic node's bytes go out
    assert for_kim(talk.response(Status.SUCCESS, b"\xff\xff")) is None  # not a MessageResp


def test_a_kim_client_is_one_that_named_no_version() -> None:
    assert is_kim_client("")
    assert not is_kim_client("0.1.0")
