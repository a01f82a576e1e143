"""The client events an operator needs, one log line each at INFO.

``login``, ``login_refused`` (a failed authentication or a refused login, with the
tenant when the token named one, the reason and the peer address), ``kickout`` and
``disconnect`` (with its close code, its reason and who closed). Each line reads as
``event key=value ...`` in the text format, and carries the same fields as a dict in
``record.fields`` (``extra``), which the JSON format (``cirno/logformat.py``) writes as
members of the line's object, so a machine never parses the message.

A connection that never logged in (a port probe, a client that gave up before its
login) ends without a line: there is no one to name, and probes would drown the rest.
"""

from __future__ import annotations

import json
import logging

from data_plane.gateway.channel import Channel
from data_plane.transport.connection import PacketConnection

log = logging.getLogger(__name__)

Field = str | int | bool


def _text(value: Field) -> str:
    """``value`` as it appears after ``key=``: quoted when it has spaces or quotes."""
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


def emit(event: str, **fields: Field) -> None:
    """Log ``event`` with ``fields`` at INFO (``fields`` keep their order)."""
    if not log.isEnabledFor(logging.INFO):
        return
    message = " ".join([event, *(f"{key}={_text(value)}" for key, value in fields.items())])
    log.info(message, extra={"event": event, "fields": fields})


def _who(channel: Channel) -> dict[str, Field]:
    conn = channel.conn
    return {
        "tenant": channel.tenant,
        "account": channel.account,
        "device": channel.device,
        "channel": channel.id,
        "peer": conn.remote_address,
        "transport": conn.kind,
    }


def login(channel: Channel) -> None:
    """A login succeeded: the channel is live."""
    emit("login", **_who(channel), client_version=channel.client_version or "kim")


def login_refused(conn: PacketConnection, status: int, reason: str, tenant: str = "") -> None:
    """A login was refused (bad token, unknown or disabled tenant, quota, upstream)."""
    emit(
        "login_refused",
        tenant=tenant,
        reason=reason,
        status=status,
        peer=conn.remote_address,
        transport=conn.kind,
    )


def kickout(channel: Channel) -> None:
    """A login on the same device elsewhere closed this channel."""
    emit("kickout", **_who(channel))


def disconnect(channel: Channel) -> None:
    """A logged-in channel's connection ended, with its close code and reason."""
    closed = channel.conn.close_reason
    code, reason, by_peer = (
        (closed.code, closed.reason, closed.by_peer) if closed else (0, "", False)
    )
    emit(
        "disconnect",
        **_who(channel),
        code=code,
        reason=reason,
        closed_by="client" if by_peer else "server",
    )
