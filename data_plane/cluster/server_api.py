"""The control plane ↔ logic link: the ``server.*`` commands of the tenants' server API.

Theory of operation. The control plane serves the REST server API
(``/v1/tenants/{tenant}/messages``, ``…/presence``, ``…/kick``, ``…/groups``,
``…/accounts/{account}/messages``) by dialling a live logic node over the same TCP link
gateways use (docs/protocol.md, "Gateway ↔ logic link"). Its ``cluster.handshake``
carries the cluster secret, an id in the ``gateway`` meta and ``role`` = ``control``
(:data:`ROLE_CONTROL`). On such a link the logic node serves the ``server.*`` commands
below and nothing else; on a gateway's link it refuses them (Forbidden), and a gateway
never forwards them from a client (``server.`` is one of
:data:`~data_plane.cluster.protocol.INTERNAL_PREFIXES`). A control link is not a
gateway: it is never registered in the node's gateway hub, so no push goes to it.

Every ``server.*`` request carries the ``tenant`` meta and the ``account`` meta (the
account acting: the sender of a ``server.send``, else :data:`SYSTEM_SENDER`); its body
and its answer's body are UTF-8 JSON objects (at most the link's packet size), because
only cirno processes speak this link and the REST side is JSON anyway. A refusal is
answered with its wire status and an ``ErrorResp`` (protobuf) saying why, as for a
client; :func:`http_status` maps a wire status to the REST status.
"""

from __future__ import annotations

import json
from typing import Any, Final

from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.wire import Status

__all__ = ["SYSTEM_SENDER"]

META_ROLE: Final = "role"
"""Handshake meta naming the kind of link; absent on a gateway's link."""
ROLE_CONTROL: Final = "control"
"""The ``role`` of the control plane's link: it may send ``server.*`` commands."""

PREFIX: Final = "server."
SEND: Final = "server.send"
"""Body ``{to | group, type, body, extra, client_msg_id}``, the sender in the ``account``
meta; answer ``{message_id, send_time, seq, duplicate}``."""
PRESENCE: Final = "server.presence"
"""Body ``{accounts: [...]}``; answer ``{accounts: {account: [{device, gateway,
channel, login_at, client_version}]}}`` (an offline account maps to ``[]``)."""
KICK: Final = "server.kick"
"""Body ``{account, device, reason}`` (``device`` "" = every device); answer ``{kicked}``."""
GROUP_CREATE: Final = "server.group.create"
"""Body ``{owner, name, avatar, introduction, members, join_policy}``; answer
``{group_id, members}``."""
GROUP_DISMISS: Final = "server.group.dismiss"
"""Body ``{group}``; answer ``{members}`` (who was notified)."""
GROUP_ADD: Final = "server.group.add"
"""Body ``{group, accounts}``; answer ``{changed}`` (the accounts that joined)."""
GROUP_REMOVE: Final = "server.group.remove"
"""Body ``{group, accounts}``; answer ``{changed}`` (the accounts that left)."""
HISTORY: Final = "server.history"
"""Body ``{account, after_seq, limit}``; answer ``{messages: [...], next_after_seq}``."""
COMMANDS: Final = frozenset(
    {SEND, PRESENCE, KICK, GROUP_CREATE, GROUP_DISMISS, GROUP_ADD, GROUP_REMOVE, HISTORY}
)

MAX_PRESENCE_ACCOUNTS: Final = 500
"""Accounts one presence call may ask about."""
MAX_GROUP_CHANGE: Final = 500
"""Accounts one members call may add or remove."""
MAX_HISTORY_PAGE: Final = 200
"""Inbox rows one history call answers at most."""
MAX_REASON_LENGTH: Final = 200
"""Characters of a kick reason (clients show it)."""


class BadBody(ValueError):
    """A ``server.*`` body that is not a JSON object."""


def encode(value: dict[str, Any]) -> bytes:
    """A ``server.*`` body or answer as bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> dict[str, Any]:
    """A ``server.*`` body or answer; raises :class:`BadBody` when it is not an object."""
    try:
        value = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody(f"server command body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadBody("server command body must be a JSON object")
    return value


_HTTP: Final[dict[int, int]] = {
    int(Status.SUCCESS): 200,
    int(Status.NO_DESTINATION): 422,
    int(Status.INVALID_PACKET_BODY): 422,
    int(Status.FORBIDDEN): 403,
    int(Status.NOT_FOUND): 404,
    int(Status.TOO_LARGE): 413,
    int(Status.UNAUTHORIZED): 403,
}


def http_status(status: int) -> int:
    """The REST status of a wire status: the caller's mistakes keep their meaning (422,
    403, 404, 413); anything else is the data plane failing now, 503 (retry)."""
    return _HTTP.get(int(status), 503)
