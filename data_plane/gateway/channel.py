"""One client connection's gateway-side state, shared by admission, session and router."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from data_plane.gateway.limits import TokenBucket
from data_plane.gateway.logic_pool import LogicRoutes
from data_plane.transport.connection import PacketConnection
from data_plane.wire import BasicCode, BasicPacket, LogicPacket, Meta, pb

PONG = BasicPacket(BasicCode.PONG).encode()


@dataclass(eq=False, slots=True)
class Channel:
    """One logged-in (or logging-in) client connection."""

    id: str
    conn: PacketConnection
    tenant: str
    account: str
    device: str
    meta: tuple[Meta, ...]
    client_version: str = ""
    kid: str = ""
    """The signing key its login token was verified with (revoking the key closes it)."""
    meta_raw: bytes = b""
    """``meta`` encoded once at login, spliced onto every packet forwarded for it."""
    routes: LogicRoutes | None = None
    """The logic links its commands go to, by service (set on the first send)."""
    logged_in: bool = False
    counted: bool = False
    bucket: TokenBucket | None = None
    login_answer: LogicPacket | None = None
    login_done: anyio.Event = field(default_factory=anyio.Event)


def error_body(message: str) -> bytes:
    """An ``ErrorResp`` body saying ``message``."""
    return pb.ErrorResp(message=message).SerializeToString()
