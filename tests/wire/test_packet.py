"""LogicPkt / BasicPkt encoding, decoding and the packet helpers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings

from data_plane.wire import (
    BASIC_MAGIC,
    DEFAULT_MAX_PACKET_SIZE,
    LOGIC_MAGIC,
    BasicCode,
    BasicPacket,
    Command,
    Flag,
    LogicPacket,
    MalformedPacket,
    Meta,
    MetaType,
    Packet,
    Status,
    decode_packet,
    pb,
)
from tests.wire.strategies import basic_packets, logic_packets

LOGIN_HEADER = bytes.fromhex("0a0c") + b"login.signin" + bytes.fromhex("1801")


def test_kim_reference_header_vector() -> None:
    assert pb.Header(command="login.signin", sequence=1).SerializeToString() == LOGIN_HEADER
    assert len(LOGIN_HEADER) == 16


def test_login_request_encodes_like_kim() -> None:
    raw = LogicPacket.request(Command.LOGIN_SIGNIN, sequence=1).encode()
    assert raw == LOGIC_MAGIC + struct.pack(">I", 16) + LOGIN_HEADER + struct.pack(">I", 0)
    assert raw.startswith(bytes.fromhex("c311a365"))


def test_magics() -> None:
    assert bytes.fromhex("c311a365") == LOGIC_MAGIC
    assert bytes.fromhex("c315a765") == BASIC_MAGIC
    assert DEFAULT_MAX_PACKET_SIZE == 65536


@settings(max_examples=300)
@given(logic_packets)
def test_logic_packet_round_trip(packet: LogicPacket) -> None:
    raw = packet.encode()
    assert decode_packet(raw) == packet
    assert decode_packet(memoryview(raw)) == packet


@settings(max_examples=200)
@given(basic_packets)
def test_basic_packet_round_trip(packet: BasicPacket) -> None:
    raw = packet.encode()
    assert raw[:4] == BASIC_MAGIC
    assert struct.unpack_from(">HH", raw, 4) == (packet.code, len(packet.body))
    assert decode_packet(raw) == packet
    assert decode_packet(memoryview(raw)) == packet


def test_ping_and_pong() -> None:
    assert BasicPacket.ping().encode() == BASIC_MAGIC + bytes.fromhex("00010000")
    assert BasicPacket.pong(b"x").encode() == BASIC_MAGIC + bytes.fromhex("00020001") + b"x"
    decoded: Packet = decode_packet(BasicPacket.ping().encode())
    assert decoded == BasicPacket(BasicCode.PING)


def test_basic_packet_out_of_range_is_value_error() -> None:
    with pytest.raises(ValueError):
        BasicPacket(0x10000).encode()
    with pytest.raises(ValueError):
        BasicPacket(1, b"x" * 0x10000).encode()


def test_decoded_header_fields_are_typed() -> None:
    packet = LogicPacket(
        "chat.user.talk",
        channel_id="ch1",
        sequence=2**32 - 1,
        flag=Flag.PUSH,
        status=999,
        dest="bob",
        meta=(Meta("n", "1", MetaType.INT),),
        body=b"\x00\x01",
    )
    decoded = decode_packet(packet.encode())
    assert isinstance(decoded, LogicPacket)
    assert decoded.flag is Flag.PUSH
    assert decoded.status == 999
    assert decoded.meta[0].type is MetaType.INT
    assert type(decoded.body) is bytes
    assert decoded.command == Command.CHAT_USER_TALK


def test_request_serializes_a_message_body() -> None:
    body = pb.LoginReq(token="t", device="ios", client_version="1.2")
    packet = LogicPacket.request(
        Command.LOGIN_SIGNIN, body, sequence=3, dest="d", channel_id="c", meta=[Meta("k", "v")]
    )
    assert packet.flag is Flag.REQUEST
    assert packet.status == 0
    assert (packet.sequence, packet.dest, packet.channel_id) == (3, "d", "c")
    assert packet.meta == (Meta("k", "v"),)
    assert packet.body == body.SerializeToString()
    assert packet.parse_body(pb.LoginReq) == body


def test_response_keeps_the_request_identity() -> None:
    request = LogicPacket.request(
        Command.CHAT_USER_TALK, b"req", sequence=9, dest="bob", channel_id="c1"
    ).with_meta(tenant="t1")
    resp = request.response(Status.SUCCESS, pb.MessageResp(messageId=7, sendTime=8))
    assert resp.command == request.command
    assert resp.channel_id == "c1"
    assert resp.sequence == 9
    assert resp.flag is Flag.RESPONSE
    assert resp.status == 0
    assert resp.dest == ""
    assert resp.meta == request.meta
    assert resp.parse_body(pb.MessageResp) == pb.MessageResp(messageId=7, sendTime=8)
    assert request.response(Status.NO_DESTINATION).body == b""
    assert request.response(Status.NO_DESTINATION).status == 100


def test_error_response_carries_error_resp() -> None:
    resp = LogicPacket.request("x", sequence=1).error_response(Status.UNAUTHORIZED, "bad token")
    assert resp.status == Status.UNAUTHORIZED
    assert resp.parse_body(pb.ErrorResp).message == "bad token"
    assert LogicPacket.request("x").error_response(Status.INVALID_COMMAND).body == b""


def test_make_push() -> None:
    push = LogicPacket.make_push(
        Command.LOGIN_SIGNIN, pb.KickoutNotify(channelId="c"), channel_id="c", meta=[Meta("a", "b")]
    )
    assert push.flag is Flag.PUSH
    assert (push.sequence, push.status) == (0, 0)
    assert push.channel_id == "c"
    assert push.meta == (Meta("a", "b"),)
    assert push.parse_body(pb.KickoutNotify).channelId == "c"
    assert LogicPacket.make_push("x", b"raw").body == b"raw"


def test_meta_helpers() -> None:
    packet = LogicPacket("cmd", meta=(Meta("a", "1"), Meta("b", "2"), Meta("a", "3")))
    assert packet.meta_value("a") == "1"
    assert packet.meta_value("b") == "2"
    assert packet.meta_value("zz") is None
    replaced = packet.with_meta(tenant="t1", account="alice")
    assert replaced.meta == (Meta("tenant", "t1"), Meta("account", "alice"))
    assert replaced.meta[0].type is MetaType.STRING
    assert packet.with_meta().meta == ()
    assert replaced.replace(meta=()) == packet.replace(meta=())
    assert packet.replace(sequence=5).sequence == 5
    assert packet.sequence == 0  # frozen: the original is untouched


def test_header_round_trip_through_protobuf() -> None:
    packet = LogicPacket("c", "ch", 5, Flag.RESPONSE, 404, "d", (Meta("k", "v", MetaType.FLOAT),))
    header = pb.Header.FromString(packet.header().SerializeToString())
    assert header.command == "c"
    assert header.flag == pb.Response
    assert header.status == pb.SessionNotFound
    assert header.meta[0].type == pb.float


def test_parse_body_wraps_decode_errors() -> None:
    packet = LogicPacket("chat.user.talk", body=b"\xff\xff\xff")
    with pytest.raises(MalformedPacket, match="MessageReq") as info:
        packet.parse_body(pb.MessageReq)
    assert info.value.__cause__ is not None


def test_parse_body_invalid_utf8_string_is_malformed() -> None:
    packet = LogicPacket("chat.user.talk", body=b"\x12\x02\xff\xfe")  # body=2 as bad UTF-8
    with pytest.raises(MalformedPacket):
        packet.parse_body(pb.MessageReq)


def test_packets_are_frozen_and_hashable() -> None:
    packet = LogicPacket("c", meta=(Meta("a", "b"),))
    with pytest.raises(AttributeError):
        packet.command = "d"  # type: ignore[misc]
    assert hash(packet) == hash(LogicPacket("c", meta=(Meta("a", "b"),)))
    assert decode_packet(packet.encode()) == packet


def test_sequence_out_of_range_is_value_error() -> None:
    with pytest.raises(ValueError):
        LogicPacket("c", sequence=2**32).encode()
