"""One client connection's gateway-side state, shared by admission, session and router.

A gateway holds tens of thousands of these, mostly idle: what only a login, a stalled
backlog or a kim client's sync needs is created then and dropped after, not carried by
every channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from data_plane.gateway.clock import Timer
from data_plane.gateway.limits import CommandLimits, TokenBucket
from data_plane.gateway.logic_pool import LogicRoutes
from data_plane.gateway.sequencer import Sequencer
from data_plane.transport.connection import PacketConnection
from data_plane.wire import BasicCode, BasicPacket, LogicPacket, pb

if TYPE_CHECKING:
    from data_plane.gateway.idle import IdleBucket

PONG = BasicPacket(BasicCode.PONG).encode()


@dataclass(eq=False, slots=True)
class Channel:
    """One logged-in (or logging-in) client connection."""

    id: str
    conn: PacketConnection
    tenant: str
    account: str
    device: str
    client_version: str = ""
    kid: str = ""
    """The signing key its login token was verified with (revoking the key closes it)."""
    meta_raw: bytes = b""
    """Its identity metas (tenant, account, device, gateway, client version) encoded
    once at login, spliced onto every packet forwarded for it."""
    routes: LogicRoutes | None = None
    """The logic links its commands go to, by service (set on the first send)."""
    logged_in: bool = False
    counted: bool = False
    limits: CommandLimits | None = None
    """Its rates, resolved at login (None: unlimited, before the login)."""
    bucket: TokenBucket | None = None
    """Every command of this connection (``limits.connection_rate``)."""
    talk_bucket: TokenBucket | None = None
    """The talk commands of this connection (``limits.talk_rate``)."""
    strikes: TokenBucket | None = None
    """The 429s it may earn before it is closed."""
    in_flight: int = 0
    """Requests forwarded to a logic node and not answered yet."""
    backlog: list[bytes] | None = None
    """Packets read while ``in_flight`` was at the cap (reading is held meanwhile)."""
    stall_timer: Timer | None = None
    answers: int = 0
    """Answers received so far (the stall timer's progress check)."""
    login_answer: LogicPacket | None = None
    login_done: anyio.Event | None = None
    """Set when the logic node answered the login (exists while the login waits)."""
    login_head: int | None = None
    """The inbox head the login answer carried (None from a node that sends none)."""
    sequencer: Sequencer | None = None
    """Delivers its inbox rows once and in order; set once the login was answered."""
    early: list[tuple[int, bytes]] | None = None
    """Sequenced pushes that came before the login answer reached the client (and, for
    a kim client, before its login sync ended)."""
    awaiting_sync: bool = False
    """A kim client between its login and the last page of its login sync: its pushes
    wait in ``early`` so that none overtakes a message the sync returns."""
    early_synced: list[int] | None = None
    """Rows the client got meanwhile (sync pages, its own sends)."""
    sync_timer: Timer | None = None
    """Ends the wait if the sync does not come (``KIM_SYNC_WAIT``)."""
    idle: IdleBucket | None = None
    """Where the idle timeout watches it (:mod:`data_plane.gateway.idle`)."""


def error_body(message: str) -> bytes:
    """An ``ErrorResp`` body saying ``message``."""
    return pb.ErrorResp(message=message).SerializeToString()
