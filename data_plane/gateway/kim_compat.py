"""What a kim client gets instead of cirno-im's own statuses and times.

A client that sends no ``client_version`` at login is taken for a kim client (kim's
SDKs send none; cirno's SDK always does). Two things differ for it, both decided here
and applied by the gateway on the way out (:class:`~data_plane.gateway.router.ChannelRouter`),
so the logic node and every other path keep cirno's precise values:

1. **Statuses.** kim's web SDK treats any response status >= 400 as a lost session: it
   closes the socket, lets the call time out and reconnects. cirno's request-level
   errors (403, 410, 413, 429, 430, 503) are therefore answered with kim's codes, which
   the SDK reports as an ordinary error; the ``ErrorResp`` message keeps the reason
   unchanged. The table, and why each row is what it is:

   ==================  =======================  ================================
   cirno               kim                      why
   ==================  =======================  ================================
   403 Forbidden       100 NoDestination        the destination is not yours to
                                                address; resending cannot help
   410 NotFound        100 NoDestination        the group or message does not
                                                exist; resending cannot help
   413 TooLarge        101 InvalidPacketBody    the request itself is too big
   429 RateLimited     300 SystemException      transient: kim's SDK resends a
   430 QuotaExceeded   300 SystemException      message after a 300-range answer
   503 Unavailable     300 SystemException      (after 2 s), which is right here
   any other >= 400    300 SystemException      an error the client may retry
   ==================  =======================  ================================

   SessionNotFound (404) is kept: it means the session really is gone, as in kim.
   Codes below 400 are kim's own and pass unchanged. The answer to a connection's
   *login* does not pass here (admission sends it): a failed login closes the
   connection for every client, as kim's gateway does, so its status is kept.

2. **Times.** kim sets ``sendTime`` in nanoseconds since the epoch; cirno keeps
   milliseconds. A kim client gets nanoseconds in ``MessageResp`` (talk answers),
   ``MessagePush`` (talk pushes) and ``MessageIndex`` (``chat.offline.index``);
   ``MessageContent`` carries no time.

Only packets that change are decoded and re-encoded: a successful answer of a command
without a time passes through as the bytes the logic node sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from google.protobuf.message import DecodeError, Message

from data_plane.wire import Command, Flag, LogicPacket, Status, pb

NANOSECONDS_PER_MILLISECOND: Final = 1_000_000

KIM_STATUS: Final[Mapping[int, int]] = {
    Status.FORBIDDEN: Status.NO_DESTINATION,
    Status.NOT_FOUND: Status.NO_DESTINATION,
    Status.EXPIRED: Status.NO_DESTINATION,
    Status.TOO_LARGE: Status.INVALID_PACKET_BODY,
    Status.RATE_LIMITED: Status.SYSTEM_EXCEPTION,
    Status.QUOTA_EXCEEDED: Status.SYSTEM_EXCEPTION,
    Status.UNAVAILABLE: Status.SYSTEM_EXCEPTION,
}
"""cirno's request-level error statuses -> the kim status a kim client gets."""

_KEPT: Final = frozenset({Status.SESSION_NOT_FOUND})
"""Statuses >= 400 that mean what kim means by them (the session is gone)."""

_FATAL_FROM: Final = 400
"""kim's web SDK drops the session on any status from here up."""


def is_kim_client(client_version: str) -> bool:
    """Whether a channel whose login sent ``client_version`` gets kim's values."""
    return not client_version


def kim_status(status: int) -> int:
    """The status a kim client gets for cirno's ``status`` (see the table above)."""
    if status < _FATAL_FROM or status in _KEPT:
        return status
    return KIM_STATUS.get(status, Status.SYSTEM_EXCEPTION)


def _talk_in_ns(body: bytes, message: type[pb.MessageResp] | type[pb.MessagePush]) -> bytes:
    decoded = message.FromString(body)
    decoded.sendTime *= NANOSECONDS_PER_MILLISECOND
    return decoded.SerializeToString()


def _index_in_ns(body: bytes) -> bytes:
    decoded = pb.MessageIndexResp.FromString(body)
    for entry in decoded.indexes:
        entry.send_time *= NANOSECONDS_PER_MILLISECOND
    return decoded.SerializeToString()


_TALK: Final = frozenset({Command.CHAT_USER_TALK, Command.CHAT_GROUP_TALK})

_TIMED_BODY: Final[Mapping[tuple[str, Flag], Callable[[bytes], bytes]]] = {
    **{(c, Flag.RESPONSE): lambda b: _talk_in_ns(b, pb.MessageResp) for c in _TALK},
    **{(c, Flag.PUSH): lambda b: _talk_in_ns(b, pb.MessagePush) for c in _TALK},
    (Command.CHAT_OFFLINE_INDEX, Flag.RESPONSE): _index_in_ns,
}
"""The successful packets that carry a ``sendTime``, and how to give it in ns."""


def for_kim(packet: LogicPacket) -> LogicPacket | None:
    """``packet`` as a kim client must see it, or None when it is already that.

    A body that does not parse is left as it is (the client would fail on it either
    way); a status is mapped whatever the body.
    """
    status = kim_status(packet.status)
    if status != packet.status:
        body = packet.body or _error_body(f"status {packet.status}")
        return packet.replace(status=status, body=body)
    if packet.status != Status.SUCCESS:
        return None
    convert = _TIMED_BODY.get((packet.command, Flag(packet.flag)))
    if convert is None or not packet.body:
        return None
    try:
        return packet.replace(body=convert(bytes(packet.body)))
    except DecodeError:
        return None


def _error_body(message: str) -> bytes:
    reply: Message = pb.ErrorResp(message=message)
    return reply.SerializeToString()
