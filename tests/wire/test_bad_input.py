"""Every bad-input case raises its own ProtocolError subclass."""

from __future__ import annotations

import struct

import pytest

from data_plane.wire import (
    BASIC_MAGIC,
    LOGIC_MAGIC,
    BadMagic,
    BadOpcode,
    FrameDecoder,
    LogicPacket,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    TruncatedPacket,
    WireError,
    decode_packet,
    encode_frame,
    pb,
)
from data_plane.wire.errors import MAX_CLOSE_REASON


def logic(header: bytes, body: bytes = b"", *, header_len: int | None = None) -> bytes:
    """A LogicPkt assembled by hand, optionally lying about the header length."""
    declared = len(header) if header_len is None else header_len
    return LOGIC_MAGIC + struct.pack(">I", declared) + header + struct.pack(">I", len(body)) + body


VALID = LogicPacket.request("chat.user.talk", b"hello", sequence=1, dest="bob").encode()


def test_error_tree() -> None:
    for cls in (BadMagic, PacketTooLarge, TruncatedPacket, MalformedPacket, BadOpcode):
        assert issubclass(cls, ProtocolError)
    assert issubclass(ProtocolError, WireError)
    assert issubclass(WireError, Exception)
    assert str(BadMagic()) == "bad magic"
    assert str(TruncatedPacket("x")) == "truncated packet: x"


def test_close_reason_fits_a_websocket_close_frame() -> None:
    error = MalformedPacket("é" * 200)
    assert len(error.close_reason.encode()) <= MAX_CLOSE_REASON
    assert error.close_reason.startswith("malformed packet: ")


def test_wrong_magic() -> None:
    with pytest.raises(BadMagic):
        decode_packet(b"\xde\xad\xbe\xef" + VALID[4:])


def test_short_magic() -> None:
    for data in (b"", LOGIC_MAGIC[:1], LOGIC_MAGIC[:3]):
        with pytest.raises(BadMagic):
            decode_packet(data)


def test_packet_longer_than_max() -> None:
    with pytest.raises(PacketTooLarge):
        decode_packet(VALID, max_size=len(VALID) - 1)
    assert decode_packet(VALID, max_size=len(VALID)) == decode_packet(VALID)


def test_declared_header_length_beyond_max() -> None:
    with pytest.raises(PacketTooLarge):
        decode_packet(logic(b"", header_len=70_000))


def test_declared_body_length_beyond_max() -> None:
    header = pb.Header(command="x").SerializeToString()
    data = LOGIC_MAGIC + struct.pack(">I", len(header)) + header + struct.pack(">I", 2**32 - 1)
    with pytest.raises(PacketTooLarge):
        decode_packet(data)


def test_basic_body_length_beyond_max() -> None:
    with pytest.raises(PacketTooLarge):
        decode_packet(BASIC_MAGIC + struct.pack(">HH", 1, 1000), max_size=500)


def test_truncated_without_header_length() -> None:
    with pytest.raises(TruncatedPacket):
        decode_packet(LOGIC_MAGIC + b"\x00\x00")


def test_truncated_header() -> None:
    with pytest.raises(TruncatedPacket):
        decode_packet(logic(b"\x0a\x01x", header_len=10))


def test_truncated_body() -> None:
    with pytest.raises(TruncatedPacket):
        decode_packet(VALID[:-1])


def test_truncated_basic_packet() -> None:
    with pytest.raises(TruncatedPacket):
        decode_packet(BASIC_MAGIC + b"\x00\x01")
    with pytest.raises(TruncatedPacket):
        decode_packet(BASIC_MAGIC + struct.pack(">HH", 1, 5) + b"abc")


def test_trailing_garbage() -> None:
    with pytest.raises(MalformedPacket, match="trailing"):
        decode_packet(VALID + b"\x00")


def test_trailing_garbage_after_basic_packet() -> None:
    with pytest.raises(MalformedPacket, match="trailing"):
        decode_packet(BASIC_MAGIC + struct.pack(">HH", 1, 0) + b"zz")


def test_garbage_header() -> None:
    with pytest.raises(MalformedPacket, match="Header") as info:
        decode_packet(logic(b"\xff\xff\xff\xff"))
    assert info.value.__cause__ is not None


def test_header_with_invalid_utf8_command() -> None:
    with pytest.raises(MalformedPacket):
        decode_packet(logic(b"\x0a\x02\xff\xfe"))


def test_unknown_flag() -> None:
    with pytest.raises(MalformedPacket, match="flag"):
        decode_packet(logic(pb.Header(command="x", flag=7).SerializeToString()))  # type: ignore[arg-type]


def test_unknown_meta_type() -> None:
    header = pb.Header(command="x", meta=[pb.Meta(key="k", value="v", type=9)])  # type: ignore[arg-type]
    with pytest.raises(MalformedPacket, match="meta type"):
        decode_packet(logic(header.SerializeToString()))


def test_unknown_header_fields_are_ignored() -> None:
    header = pb.Header(command="x").SerializeToString() + b"\x78\x01"  # field 15 varint
    packet = decode_packet(logic(header))
    assert packet == LogicPacket("x")


def test_unknown_frame_opcode() -> None:
    with pytest.raises(BadOpcode):
        FrameDecoder().feed(b"\x03")  # rejected on its first byte
    with pytest.raises(BadOpcode):
        FrameDecoder().feed(encode_frame(0x2, b"ok") + b"\x01\x00\x00\x00\x00")


def test_oversized_frame_length() -> None:
    decoder = FrameDecoder(max_payload=100)
    with pytest.raises(PacketTooLarge):
        decoder.feed(b"\x02\x00\x00\x00\x65")  # 101 > 100, nothing of the payload yet


def test_decoder_is_poisoned_after_an_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(BadOpcode) as first:
        decoder.feed(b"\x07\x00\x00\x00\x00")
    with pytest.raises(BadOpcode) as again:
        decoder.feed(encode_frame(0x2, b"fine"))
    assert again.value is first.value


def test_encode_frame_rejects_unknown_opcode() -> None:
    with pytest.raises(ValueError):
        encode_frame(0x1, b"")
