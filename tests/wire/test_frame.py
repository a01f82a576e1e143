"""TCP framing: encoding and FrameDecoder under every chunking."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.wire import (
    FRAME_HEADER_SIZE,
    Frame,
    FrameDecoder,
    LogicPacket,
    Opcode,
    decode_packet,
    encode_frame,
    encode_frames,
)
from tests.wire.strategies import frames


def stream_of(items: list[tuple[Opcode, bytes]]) -> bytes:
    """The encoded byte stream of ``items``."""
    return b"".join(encode_frame(opcode, payload) for opcode, payload in items)


def feed_chunks(chunks: list[bytes | bytearray | memoryview]) -> tuple[list[Frame], FrameDecoder]:
    """Feed ``chunks`` one by one; every frame returned, and the decoder."""
    decoder = FrameDecoder()
    out: list[Frame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out, decoder


def test_frame_layout() -> None:
    assert encode_frame(Opcode.BINARY, b"abc") == b"\x02\x00\x00\x00\x03abc"
    assert encode_frame(Opcode.PING, b"") == b"\x09\x00\x00\x00\x00"
    assert FRAME_HEADER_SIZE == 5


def test_encode_frames_joins_binary_frames() -> None:
    payloads = [b"a", b"", b"bc" * 100]
    assert encode_frames(payloads) == b"".join(encode_frame(Opcode.BINARY, p) for p in payloads)
    assert encode_frames(iter(payloads)) == encode_frames(payloads)
    assert encode_frames([]) == b""


def test_every_split_position() -> None:
    items = [
        (Opcode.BINARY, b"hello"),
        (Opcode.PING, b""),
        (Opcode.BINARY, bytes(range(40))),
        (Opcode.PONG, b"p"),
        (Opcode.CLOSE, b"bye"),
    ]
    data = stream_of(items)
    expected = [Frame(opcode, payload) for opcode, payload in items]
    for cut in range(len(data) + 1):
        out, decoder = feed_chunks([data[:cut], data[cut:]])
        assert out == expected, cut
        assert decoder.buffered == 0
    for first in range(len(data)):
        for second in range(first, len(data) + 1, 7):
            out, _ = feed_chunks([data[:first], data[first:second], data[second:]])
            assert out == expected


def test_one_byte_at_a_time() -> None:
    items = [(Opcode.BINARY, b"x" * 300), (Opcode.PING, b""), (Opcode.BINARY, b"y")]
    data = stream_of(items)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
        assert decoder.buffered <= FRAME_HEADER_SIZE + 300
    assert out == [Frame(opcode, payload) for opcode, payload in items]
    assert decoder.buffered == 0


def test_large_read_with_hundreds_of_frames() -> None:
    packet = LogicPacket.request("chat.user.talk", b"m" * 100, sequence=1).encode()
    data = encode_frames([packet] * 2000)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for start in range(0, len(data), 65536):
        out.extend(decoder.feed(data[start : start + 65536]))
    assert len(out) == 2000
    assert all(frame.opcode is Opcode.BINARY and frame.payload == packet for frame in out)
    assert decode_packet(out[-1].payload) == decode_packet(packet)
    assert decoder.buffered == 0


def test_buffered_counts_an_incomplete_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x02\x00\x00") == []
    assert decoder.buffered == 3
    assert decoder.feed(b"\x00\x02a") == []
    assert decoder.buffered == 6
    assert decoder.feed(b"b\x02") == [Frame(Opcode.BINARY, b"ab")]
    assert decoder.buffered == 1


def test_accepts_bytearray_and_memoryview_chunks() -> None:
    data = stream_of([(Opcode.BINARY, b"one"), (Opcode.BINARY, b"two")])
    out, _ = feed_chunks([bytearray(data[:4]), memoryview(data)[4:10], data[10:]])
    assert [frame.payload for frame in out] == [b"one", b"two"]
    assert all(type(frame.payload) is bytes for frame in out)


def test_max_payload_is_inclusive() -> None:
    decoder = FrameDecoder(max_payload=4)
    assert decoder.max_payload == 4
    assert decoder.feed(encode_frame(Opcode.BINARY, b"1234")) == [Frame(Opcode.BINARY, b"1234")]


@settings(max_examples=200)
@given(frames, st.data())
def test_random_chunkings(items: list[tuple[Opcode, bytes]], data: st.DataObject) -> None:
    stream = stream_of(items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    chunks: list[bytes | bytearray | memoryview] = [
        stream[a:b] for a, b in itertools.pairwise(bounds)
    ]
    out, decoder = feed_chunks(chunks)
    assert out == [Frame(opcode, payload) for opcode, payload in items]
    assert decoder.buffered == 0


@settings(max_examples=100)
@given(frames, st.integers(1, 64))
def test_truncated_stream_keeps_the_tail(items: list[tuple[Opcode, bytes]], drop: int) -> None:
    stream = stream_of(items)
    if not stream:
        return
    drop = min(drop, len(stream))
    out, decoder = feed_chunks([stream[: len(stream) - drop]])
    complete = 0
    consumed = 0
    for _opcode, payload in items:
        size = FRAME_HEADER_SIZE + len(payload)
        if consumed + size > len(stream) - drop:
            break
        consumed += size
        complete += 1
    assert len(out) == complete
    assert decoder.buffered == len(stream) - drop - consumed
    assert struct.calcsize(">BI") == FRAME_HEADER_SIZE
