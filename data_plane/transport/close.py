"""How a connection ends: the close codes and reasons both transports carry.

A WebSocket close frame and a TCP close frame hold the same payload (``u16 code | utf-8
reason``), so one set of codes serves both: RFC 6455's and cirno-im's own
(docs/protocol.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CloseCode(enum.IntEnum):
    """Close codes, shared by WebSocket close frames and TCP close frames.

    1000–1013 are RFC 6455 codes; 4000–4999 are cirno-im's (see docs/protocol.md).
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006
    POLICY_VIOLATION = 1008
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4001
    KICKED_OUT = 4002
    SLOW_CONSUMER = 4003
    LOGIN_TIMEOUT = 4004
    IDLE_TIMEOUT = 4005
    QUOTA_EXCEEDED = 4006
    RESYNC = 4007
    RATE_LIMITED = 4008


KNOWN_CLOSE_CODES = frozenset(int(code) for code in CloseCode) | {1005}
"""The codes a metric may name; any other code a peer sends is counted as "other"."""


def close_code_label(code: int) -> str:
    """A metric label for ``code``: its number when it is one of ours (or 1005, no
    status), else ``other``. Peers choose close codes (65,536 of them): a label taken
    from them as they are would let any client create series without bound."""
    return str(code) if code in KNOWN_CLOSE_CODES else "other"


@dataclass(frozen=True, slots=True)
class CloseReason:
    """Why a connection ended; ``by_peer`` tells who ended it."""

    code: int
    reason: str
    by_peer: bool


def encode_close_payload(code: int, reason: str) -> bytes:
    """``u16 code | utf-8 reason`` (at most 123 bytes of reason, as in RFC 6455)."""
    return code.to_bytes(2, "big") + reason.encode("utf-8", "replace")[:123]


def decode_close_payload(payload: bytes) -> tuple[int, str]:
    """Inverse of :func:`encode_close_payload`; an empty payload is 1005 (no status)."""
    if len(payload) < 2:
        return 1005, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
