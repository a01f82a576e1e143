"""Errors of the wire codec: one tree under :class:`WireError`.

Every way a peer's bytes can break the protocol is a :class:`ProtocolError` subclass, so
a receive loop needs one ``except ProtocolError`` clause. ``str(exc)`` is short and fit
to be sent as a close reason (see :attr:`ProtocolError.close_reason`); it never echoes
the offending bytes back.
"""

from __future__ import annotations

from typing import ClassVar

# RFC 6455 §5.5: a close frame body is at most 125 bytes, 2 of them the close code.
MAX_CLOSE_REASON = 123


class WireError(Exception):
    """Root of every error raised by ``data_plane.wire``."""


class ProtocolError(WireError):
    """The peer sent bytes that break the protocol; the connection should be closed.

    ``str()`` is ``"<reason>"`` or ``"<reason>: <detail>"``.
    """

    reason: ClassVar[str] = "protocol error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)

    @property
    def close_reason(self) -> str:
        """``str(self)`` cut to fit a WebSocket close frame (123 UTF-8 bytes)."""
        raw = str(self).encode()[:MAX_CLOSE_REASON]
        return raw.decode(errors="ignore")


class BadMagic(ProtocolError):
    """The data does not start with the LogicPkt or BasicPkt magic (or is shorter)."""

    reason = "bad magic"


class PacketTooLarge(ProtocolError):
    """A packet, or a length it declares, is beyond the configured maximum."""

    reason = "packet too large"


class TruncatedPacket(ProtocolError):
    """A length declared inside the packet goes past the end of the data."""

    reason = "truncated packet"


class MalformedPacket(ProtocolError):
    """The lengths add up but the content is wrong: trailing bytes, bad protobuf, ..."""

    reason = "malformed packet"


class BadOpcode(ProtocolError):
    """A TCP frame carries an opcode other than binary, close, ping or pong."""

    reason = "bad opcode"
