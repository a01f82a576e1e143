"""Login admission: the first packet of a connection, checked here, answered upstream.

The first packet must be ``login.signin``. The token is verified here (the gateway
knows the tenants' keys); a refused token gets a response with status Unauthorized (105)
and an ``ErrorResp`` reason, then the connection closes with code 4001. An accepted
login gets a channel id containing the account and is forwarded to the logic node that
owns the account, which has ``logic_request_timeout`` to answer; its answer goes back
to the client, and only a Success makes the channel live. A tenant's
``max_connections`` holds across the cluster (see :mod:`data_plane.gateway.quota`): a
login over it gets QuotaExceeded (430) and close 4006. Logins over the rate of their IP
(checked before the token) or of their tenant (after it) get RateLimited (429) and close
4008 (see :mod:`data_plane.gateway.throttle`). A login the logic node was too busy to
start in time gets Unavailable (503), and one that failed there SystemException (300):
both close with 1013, "try again later".

Until its token is verified the connection has a tiny budget (``login_max_packet_size``
and ``login_send_buffer``); the full limits apply from then on.
"""

from __future__ import annotations

import itertools
import time
from typing import NoReturn

import anyio

from data_plane.cluster.protocol import (
    DEFAULT_DEVICE,
    META_ACCOUNT,
    META_CLIENT_VERSION,
    META_DEVICE,
    META_GATEWAY,
    META_TENANT,
)
from data_plane.cluster.revocation import refusal
from data_plane.cluster.tenants import TenantDirectory
from data_plane.gateway import events
from data_plane.gateway.auth import AuthError, verify_token
from data_plane.gateway.channel import Channel, error_body
from data_plane.gateway.clock import Clock
from data_plane.gateway.router import ChannelRouter
from data_plane.gateway.settings import GatewaySettings
from data_plane.gateway.throttle import Throttle
from data_plane.metrics import LOGINS
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.wire import (
    BasicPacket,
    Command,
    LogicPacket,
    MalformedPacket,
    Meta,
    PacketTooLarge,
    ProtocolError,
    Status,
    decode_packet,
    encode_meta,
    pb,
)

MAX_DEVICE_LENGTH = 32
MAX_CLIENT_VERSION_LENGTH = 32


class LoginRefused(Exception):
    """Login failed; the client has been answered and the connection closed."""


def decode_or_close(
    conn: PacketConnection, raw: bytes, max_size: int
) -> LogicPacket | BasicPacket | None:
    """Decode one client packet; on a bad one close ``conn`` (1009/1002), return None."""
    try:
        return decode_packet(raw, max_size=max_size)
    except PacketTooLarge as exc:
        conn.close(CloseCode.TOO_BIG, str(exc))
    except ProtocolError as exc:
        conn.close(CloseCode.PROTOCOL_ERROR, str(exc))
    return None


class LoginAdmission:
    """Turns a connection's first packet into a live :class:`Channel`, or refuses it."""

    def __init__(
        self,
        settings: GatewaySettings,
        directory: TenantDirectory,
        router: ChannelRouter,
        clock: Clock,
        throttle: Throttle,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.router = router
        self.clock = clock
        self.throttle = throttle
        self._channel_numbers = itertools.count(1)

    async def admit(
        self, conn: PacketConnection, batch: list[bytes]
    ) -> tuple[Channel | None, list[bytes]]:
        """Handle the first packet (which must be ``login.signin``); the rest of ``batch``
        is returned to be forwarded once the login succeeded. Raises
        :class:`LoginRefused` when the login was answered with a failure."""
        packet = decode_or_close(conn, batch[0], self.settings.max_packet_size)
        if packet is None:
            return None, []
        if not isinstance(packet, LogicPacket) or packet.command != Command.LOGIN_SIGNIN:
            _refuse(conn, packet, Status.UNAUTHORIZED, "login.signin must be the first packet")
        assert isinstance(packet, LogicPacket)
        if not self.throttle.admits_ip(conn.remote_address):
            _refuse(conn, packet, Status.RATE_LIMITED, "too many logins from this address")
        try:
            req = packet.parse_body(pb.LoginReq)
        except MalformedPacket as exc:
            _refuse(conn, packet, Status.INVALID_PACKET_BODY, f"bad LoginReq: {exc}")
        try:
            claims = await verify_token(req.token, self.directory.lookup)
        except AuthError as exc:
            _refuse(conn, packet, Status.UNAUTHORIZED, str(exc), exc.tenant)
        refused = refusal(claims.tenant_info, claims.account, time.time())
        if refused is not None:  # a banned account (ban expiries are wall-clock times)
            _refuse(conn, packet, Status.FORBIDDEN, refused, claims.tenant)
        device = req.device or DEFAULT_DEVICE
        if len(device) > MAX_DEVICE_LENGTH or not device.isprintable() or "," in device:
            reason = "device must be 1-32 characters"
            _refuse(conn, packet, Status.INVALID_PACKET_BODY, reason, claims.tenant)
        version = req.client_version[:MAX_CLIENT_VERSION_LENGTH]
        quotas = claims.tenant_info
        if not self.throttle.admits_tenant(quotas):
            _refuse(conn, packet, Status.RATE_LIMITED, "too many logins of this tenant")
        quota = self.router.quota
        if not quota.admits(claims.tenant, quotas.max_connections):
            reason = f"tenant connection quota of {quotas.max_connections} is used up"
            _refuse(conn, packet, Status.QUOTA_EXCEEDED, reason, claims.tenant)
        gateway_id = self.settings.gateway_id
        channel = Channel(
            id=f"{gateway_id}_{claims.account}_{next(self._channel_numbers)}",
            conn=conn,
            tenant=claims.tenant,
            account=claims.account,
            device=device,
            client_version=version,
            kid=claims.kid,
            meta_raw=encode_meta(
                (
                    Meta(META_TENANT, claims.tenant),
                    Meta(META_ACCOUNT, claims.account),
                    Meta(META_DEVICE, device),
                    Meta(META_GATEWAY, gateway_id),
                    Meta(META_CLIENT_VERSION, version),
                )
            ),
        )
        self.throttle.set_up(channel, quotas)
        # The token is verified: the peer gets the full limits now, before the logic
        # node answers (pushes may follow its answer before this task runs again).
        s = self.settings
        conn.set_limits(max_packet_size=s.max_packet_size, max_send_buffer=s.max_send_buffer)
        self.router.channels[channel.id] = channel
        quota.acquire(channel.tenant)  # no suspension since admits(): the slot is ours
        channel.counted = True
        try:
            await self._ask_logic(channel, packet)
        except BaseException:
            self.router.drop_channel(channel)
            raise
        channel.logged_in = True
        self.router.inbox.begin_delivery(channel)
        LOGINS.labels("ok").inc()
        events.login(channel)
        return channel, batch[1:]

    async def _ask_logic(self, channel: Channel, packet: LogicPacket) -> None:
        """Forward the login to the account's logic node and relay its answer; returns
        only on Success."""
        conn, pool, timeout = channel.conn, self.router.pool, self.settings.logic_request_timeout
        if not pool.ready.is_set():
            with self.clock.move_on_after(timeout):
                await pool.ready.wait()
        done = channel.login_done = anyio.Event()
        try:
            if not self.router.send_to_logic(channel, packet):
                reason = "no logic node available"
                _refuse(conn, packet, Status.SYSTEM_EXCEPTION, reason, channel.tenant)
            with self.clock.move_on_after(timeout):
                await done.wait()
        finally:
            channel.login_done = None
        answer, channel.login_answer = channel.login_answer, None
        if answer is None:
            reason = "login timed out upstream"
            _refuse(conn, packet, Status.SYSTEM_EXCEPTION, reason, channel.tenant)
        conn.send(answer.encode())
        if answer.status != Status.SUCCESS:
            LOGINS.labels("refused_upstream").inc()
            events.login_refused(conn, answer.status, _reason_of(answer), channel.tenant)
            conn.close(close_code_of(answer.status), f"login failed with status {answer.status}")
            raise LoginRefused


def _reason_of(answer: LogicPacket) -> str:
    """The ``ErrorResp`` message of a refused login's answer, for the log."""
    try:
        return answer.parse_body(pb.ErrorResp).message
    except MalformedPacket:
        return f"status {answer.status}"


def _refuse(
    conn: PacketConnection,
    packet: LogicPacket | BasicPacket,
    status: int,
    reason: str,
    tenant: str = "",
) -> NoReturn:
    """Answer ``packet`` with ``status`` and ``reason``, close, raise LoginRefused;
    ``tenant`` (when the token named one) goes to the log line."""
    LOGINS.labels(Status(status).name.lower()).inc()
    events.login_refused(conn, status, reason, tenant)
    if isinstance(packet, LogicPacket):
        answer = packet.replace(meta=(), dest="").response(status, error_body(reason))
        conn.send(answer.encode())
    conn.close(close_code_of(status), reason)
    raise LoginRefused(reason)


_CLOSE_CODES: dict[int, CloseCode] = {
    Status.UNAUTHORIZED: CloseCode.UNAUTHORIZED,
    Status.SYSTEM_EXCEPTION: CloseCode.TRY_AGAIN_LATER,
    Status.UNAVAILABLE: CloseCode.TRY_AGAIN_LATER,
    Status.QUOTA_EXCEEDED: CloseCode.QUOTA_EXCEEDED,
    Status.RATE_LIMITED: CloseCode.RATE_LIMITED,
}


def close_code_of(status: int) -> CloseCode:
    """The close code after a login refused with ``status`` (by the gateway or the
    logic node): 1013 "try again later" when the server was busy or failing."""
    return _CLOSE_CODES.get(status, CloseCode.POLICY_VIOLATION)
