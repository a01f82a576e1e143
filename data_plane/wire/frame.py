"""TCP framing: ``u8 opcode | u32 length (big-endian) | payload``.

Used by TCP clients and by the gateway <-> logic link. Opcodes are binary (one packet per
frame), close, ping and pong (:class:`~data_plane.wire.enums.Opcode`).

Theory of operation
-------------------
:class:`FrameDecoder` is fed whatever a socket read returned -- one byte, or a 64 KiB
read holding hundreds of frames -- and returns every frame that is now complete. It is
built for large reads: while nothing is buffered, frames are sliced straight out of the
chunk just read (one copy per payload, none of the chunk); only the incomplete tail is
kept in a ``bytearray``. When bytes are buffered, the chunk is appended and frames are
sliced out by offset; the consumed prefix is dropped once at the end of the call, never
per frame, so a call costs O(chunk + frames), not O(frames x buffer).

The header is checked as soon as it is there: an unknown opcode is rejected on its first
byte and a length over ``max_payload`` before any of the payload arrives, so a peer can
never make the decoder buffer more than one header plus ``max_payload`` bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import NoReturn

from data_plane.wire.enums import Opcode
from data_plane.wire.errors import BadOpcode, PacketTooLarge, ProtocolError
from data_plane.wire.packet import DEFAULT_MAX_PACKET_SIZE

FRAME_HEADER_SIZE = 5

_HEAD = struct.Struct(">BI")
_OPCODES = {opcode.value: opcode for opcode in Opcode}


@dataclass(frozen=True, slots=True)
class Frame:
    """One TCP frame."""

    opcode: Opcode
    payload: bytes


_new = object.__new__
_set_opcode = Frame.__dict__["opcode"].__set__
_set_payload = Frame.__dict__["payload"].__set__
if tuple(f.name for f in fields(Frame)) != ("opcode", "payload"):  # pragma: no cover
    raise RuntimeError("update the Frame setters in FrameDecoder._parse")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One frame's bytes; ``ValueError`` for an unknown opcode or a payload over 4 GiB."""
    if opcode not in _OPCODES:
        raise ValueError(f"unknown frame opcode {opcode!r}")
    try:
        head = _HEAD.pack(opcode, len(payload))
    except struct.error as exc:
        raise ValueError(f"frame payload too large: {len(payload)} bytes") from exc
    return head + payload


def encode_frames(payloads: Iterable[bytes]) -> bytes:
    """Binary frames for every payload, joined into one buffer for a single write."""
    parts: list[bytes] = []
    pack = _HEAD.pack
    binary = Opcode.BINARY.value
    for payload in payloads:
        parts.append(pack(binary, len(payload)))
        parts.append(payload)
    return b"".join(parts)


class FrameDecoder:
    """Incremental frame parser: bytes in (any chunking), complete frames out.

    After :meth:`feed` has raised a :class:`ProtocolError` the stream is out of sync
    and the decoder must not be reused: every later call raises the same error. Close
    the connection instead. Frames completed earlier in the failing call are dropped:
    the stream they came from is corrupt.
    """

    __slots__ = ("_buffer", "_error", "_max_payload")

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not complete yet (non-zero at EOF means a cut frame)."""
        return len(self._buffer)

    @property
    def max_payload(self) -> int:
        """The largest payload accepted, in bytes."""
        return self._max_payload

    @max_payload.setter
    def max_payload(self, value: int) -> None:
        # Raised once a connection has authenticated (a tiny limit before that); frames
        # fed from now on are checked against the new value.
        self._max_payload = value

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Take the next chunk of the stream; return the frames it completes, in order.

        Raises :class:`BadOpcode` or :class:`PacketTooLarge` (both ``ProtocolError``).
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        if not buffer and type(data) is bytes:
            # Fast path: parse straight out of the chunk, keep only its incomplete tail.
            frames, pos = self._parse(data, len(data))
            if pos < len(data):
                with memoryview(data) as view:
                    buffer += view[pos:]
            return frames
        buffer += data
        with memoryview(buffer) as view:
            frames, pos = self._parse(view, len(buffer))
        if pos:
            del buffer[:pos]  # once per call; CPython drops a prefix without moving much
        return frames

    def _parse(self, source: bytes | memoryview, end: int) -> tuple[list[Frame], int]:
        """Slice every complete frame out of ``source``; return them and the resume offset."""
        frames: list[Frame] = []
        append = frames.append
        unpack_from = _HEAD.unpack_from
        opcodes = _OPCODES
        max_payload = self._max_payload
        new = _new
        set_opcode = _set_opcode
        set_payload = _set_payload
        pos = 0
        while end - pos >= FRAME_HEADER_SIZE:
            code, length = unpack_from(source, pos)
            opcode = opcodes.get(code)
            if opcode is None:
                self._fail(BadOpcode(f"0x{code:02x}"))
            if length > max_payload:
                self._fail(PacketTooLarge(f"frame length {length} > {max_payload}"))
            start = pos + FRAME_HEADER_SIZE
            stop = start + length
            if stop > end:
                return frames, pos
            frame: Frame = new(Frame)  # Frame(...) without the frozen __init__'s setattrs
            set_opcode(frame, opcode)
            set_payload(frame, bytes(source[start:stop]))
            append(frame)
            pos = stop
        if pos < end and source[pos] not in opcodes:
            self._fail(BadOpcode(f"0x{source[pos]:02x}"))
        return frames, pos

    def _fail(self, error: ProtocolError) -> NoReturn:
        """Poison the decoder with ``error`` and raise it."""
        self._error = error
        raise error
