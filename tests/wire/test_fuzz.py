"""Arbitrary and mutated input never raises anything but ProtocolError."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.wire import (
    FrameDecoder,
    LogicPacket,
    Packet,
    ProtocolError,
    decode_packet,
    encode_frame,
)
from tests.wire.strategies import frames, packets


def decode_or_protocol_error(data: bytes, max_size: int = 65536) -> Packet | None:
    """Decode ``data``; ``None`` on ProtocolError, any other exception fails the test."""
    try:
        return decode_packet(data, max_size=max_size)
    except ProtocolError:
        return None


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    decode_or_protocol_error(data)
    decode_or_protocol_error(data, max_size=16)


@settings(max_examples=300)
@given(st.sampled_from([b"\xc3\x11\xa3\x65", b"\xc3\x15\xa7\x65"]), st.binary(max_size=120))
def test_arbitrary_bytes_after_a_valid_magic(magic: bytes, rest: bytes) -> None:
    decode_or_protocol_error(magic + rest)


@settings(max_examples=300)
@given(packets, st.data())
def test_mutated_packets(packet: Packet, data: st.DataObject) -> None:
    raw = bytearray(packet.encode())
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "append", "length"]))
    if kind == "flip":
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        del raw[data.draw(st.integers(0, len(raw) - 1)) :]
    elif kind == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=20))
    elif kind == "append":
        raw[4:4] = data.draw(st.binary(min_size=1, max_size=8))
    elif isinstance(packet, LogicPacket):
        # rewrite the declared header or body length
        offset = data.draw(st.sampled_from([4, 8 + struct.unpack_from(">I", raw, 4)[0]]))
        struct.pack_into(">I", raw, offset, data.draw(st.integers(0, 2**32 - 1)))
    else:
        struct.pack_into(">H", raw, 6, data.draw(st.integers(0, 0xFFFF)))
    decode_or_protocol_error(bytes(raw))


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_frame_decoder_arbitrary_chunks(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_payload=64)
    for chunk in chunks:
        try:
            decoder.feed(chunk)
        except ProtocolError as error:
            try:
                decoder.feed(b"\x02\x00\x00\x00\x00")
            except ProtocolError as again:
                assert again is error
            else:
                raise AssertionError("a failed decoder accepted more input")
            return


@settings(max_examples=200)
@given(frames, st.data())
def test_frame_decoder_mutated_streams(items: list[tuple[int, bytes]], data: st.DataObject) -> None:
    stream = bytearray(b"".join(encode_frame(opcode, payload) for opcode, payload in items))
    if stream:
        index = data.draw(st.integers(0, len(stream) - 1))
        stream[index] ^= data.draw(st.integers(1, 255))
    decoder = FrameDecoder(max_payload=256)
    step = data.draw(st.integers(1, 64))
    try:
        for start in range(0, len(stream), step):
            for frame in decoder.feed(bytes(stream[start : start + step])):
                assert len(frame.payload) <= 256
    except ProtocolError:
        pass
