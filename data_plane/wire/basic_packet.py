"""BasicPkt: a u16 code (1 ping, 2 pong) and a short raw body.

Layout (integers big-endian)::

    C3 15 A7 65 | u16 code | u16 body length | body
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from data_plane.wire.enums import BasicCode
from data_plane.wire.errors import MalformedPacket, PacketTooLarge, TruncatedPacket

BASIC_MAGIC = bytes.fromhex("c315a765")

_BASIC_HEAD = struct.Struct(">4sHH")  # magic | code | body length


@dataclass(frozen=True, slots=True)
class BasicPacket:
    """A BasicPkt: a u16 code (1 ping, 2 pong) and a short raw body."""

    code: int
    body: bytes = b""

    @classmethod
    def ping(cls, body: bytes = b"") -> BasicPacket:
        """A ping."""
        return cls(BasicCode.PING, body)

    @classmethod
    def pong(cls, body: bytes = b"") -> BasicPacket:
        """A pong, the answer to a ping."""
        return cls(BasicCode.PONG, body)

    def encode(self) -> bytes:
        """The packet's bytes: magic | u16 code | u16 length | body.

        ``ValueError`` if the code or the body length does not fit in 16 bits.
        """
        try:
            head = _BASIC_HEAD.pack(BASIC_MAGIC, self.code, len(self.body))
        except struct.error as exc:
            raise ValueError(f"BasicPacket code or body length out of range: {exc}") from exc
        return head + self.body


def _decode_basic(data: bytes | bytearray | memoryview, size: int, max_size: int) -> BasicPacket:
    """The BasicPkt half of :func:`decode_packet` (the magic is already checked)."""
    if size < 8:
        raise TruncatedPacket("no code and length")
    _, code, body_len = _BASIC_HEAD.unpack_from(data)
    if body_len > max_size:
        raise PacketTooLarge(f"body length {body_len} > {max_size}")
    end = 8 + body_len
    if end > size:
        raise TruncatedPacket(f"body length {body_len}, {size - 8} bytes follow")
    if end < size:
        raise MalformedPacket(f"{size - end} trailing bytes")
    return BasicPacket(code, bytes(data[8:end]))
