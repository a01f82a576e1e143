"""The gateway: client connections in, logic nodes behind.

Theory of operation
-------------------
Each client connection (WebSocket or TCP, one :class:`PacketConnection` either way)
gets one task running :meth:`Gateway._serve_client`:

1. **Login.** The first packet must be ``login.signin``, received within
   ``login_timeout`` (then the logic node has ``logic_request_timeout`` to answer). The
   token is verified here (the gateway knows the tenants' keys); a refused token gets a
   response with status Unauthorized (105) and an ``ErrorResp`` reason, then the
   connection closes with code 4001. An accepted login gets a channel id containing the
   account and is forwarded to the logic node that owns the account; its answer goes
   back to the client, and only a Success makes the channel live. A tenant's
   ``max_connections`` holds across the cluster (see :mod:`data_plane.gateway.quota`):
   a login over it gets QuotaExceeded (430) and close 4006.
2. **Pump.** Every further packet is decoded (header only; the body passes through)
   in the transport's callback as it arrives, pings are answered here, and logic
   packets are forwarded with the client's meta replaced by the gateway's (tenant,
   account, device, gateway). A connection silent for ``idle_timeout`` is closed.
3. **End.** The channel is dropped and the logic node is told (``login.signout``), so
   it removes the location if that location still belongs to this channel.

Packets from a logic node are responses (routed by channel id) or pushes (routed to the
channels in their ``channels`` meta). A push of ``login.signin`` is a KickoutNotify: it
is delivered and then the connection is closed. A client whose send buffer is full is
disconnected as a slow consumer; nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import NoReturn

import anyio
from anyio.abc import TaskGroup, TaskStatus

from data_plane.cluster.grayscale import ClientFacts
from data_plane.cluster.protocol import (
    DEFAULT_DEVICE,
    INTERNAL_PREFIXES,
    META_ACCOUNT,
    META_CHANNELS,
    META_CLIENT_VERSION,
    META_DEVICE,
    META_GATEWAY,
    META_TENANT,
    REFRESH_COMMAND,
)
from data_plane.cluster.registry import NodeState, RegistryClient, RegistryUnavailable
from data_plane.cluster.tenants import TenantDirectory
from data_plane.gateway.auth import AuthError, verify_token
from data_plane.gateway.limits import TokenBucket
from data_plane.gateway.logic_link import LogicLink
from data_plane.gateway.logic_pool import LogicPool, LogicRoutes
from data_plane.gateway.quota import ConnectionQuota
from data_plane.gateway.settings import GatewaySettings
from data_plane.metrics import CLOSES, CONNECTIONS, HEARTBEATS, LOGINS
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import serve_tcp
from data_plane.transport.ws import serve_ws
from data_plane.wire import (
    BasicCode,
    BasicPacket,
    Command,
    Flag,
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

log = logging.getLogger(__name__)

PONG = BasicPacket(BasicCode.PONG).encode()
RATE_LIMITED_COMMANDS = frozenset({Command.CHAT_USER_TALK, Command.CHAT_GROUP_TALK})
MAX_DEVICE_LENGTH = 32
MAX_CLIENT_VERSION_LENGTH = 32


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
    meta_raw: bytes = b""
    """``meta`` encoded once at login, spliced onto every packet forwarded for it."""
    routes: LogicRoutes | None = None
    """The logic links its commands go to, by service (set on the first send)."""
    logged_in: bool = False
    counted: bool = False
    bucket: TokenBucket | None = None
    login_answer: LogicPacket | None = None
    login_done: anyio.Event = field(default_factory=anyio.Event)


class LoginRefused(Exception):
    """Login failed; the client has been answered and the connection closed."""


def _error_body(message: str) -> bytes:
    return pb.ErrorResp(message=message).SerializeToString()


class Gateway:
    """A gateway process's state: its clients, channels and logic links."""

    def __init__(self, settings: GatewaySettings, directory: TenantDirectory) -> None:
        self.settings = settings
        self.directory = directory
        self.channels: dict[str, Channel] = {}
        self.registry = RegistryClient(settings.control_url, settings.cluster_secret)
        self.pool = LogicPool(settings, self.registry, self._on_logic_packet)
        self.draining = False
        self._channel_numbers = itertools.count(1)
        self.quota = ConnectionQuota()
        """Channels per tenant here and on the other gateways (the connection quota)."""
        self._tg: TaskGroup | None = None
        self.ws_port = settings.ws_port
        self.tcp_port = settings.tcp_port

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports started once both listeners are bound."""
        s = self.settings
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.directory.run)
            await tg.start(self.pool.run)
            tg.start_soon(self._refresh_locations)
            ws = await serve_ws(
                s.ws_host,
                s.ws_port,
                self._accept,
                max_packet_size=s.max_packet_size,
                max_send_buffer=s.max_send_buffer,
            )
            tcp = await serve_tcp(
                s.tcp_host,
                s.tcp_port,
                self._accept,
                max_packet_size=s.max_packet_size,
                max_send_buffer=s.max_send_buffer,
            )
            self.ws_port = ws.sockets[0].getsockname()[1]
            self.tcp_port = tcp.sockets[0].getsockname()[1]
            log.info("gateway %s: ws %s tcp %s", s.gateway_id, self.ws_port, self.tcp_port)
            tg.start_soon(self._heartbeats)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                ws.close()
                tcp.close()
                for channel in list(self.channels.values()):
                    channel.conn.close(CloseCode.GOING_AWAY, "gateway shutting down")
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    self.draining = True  # the registry stops handing this gateway out
                    # Every client was just closed: their quota slots are free cluster-wide
                    # now rather than when this node expires.
                    await self._heartbeat(closing=True)
                await self.directory.aclose()
                await self.registry.aclose()

    def _state(self, *, closing: bool = False) -> NodeState:
        s = self.settings
        return NodeState(
            id=s.gateway_id,
            role="gateway",
            zone=s.zone,
            region=s.region,
            pool=s.pool,
            version=s.version,
            connections=0 if closing else len(self.channels),
            capacity=s.capacity,
            draining=self.draining,
            ws_url=s.public_ws_url or f"ws://{s.ws_host}:{self.ws_port}/",
            tcp_addr=s.public_tcp_addr or f"{s.tcp_host}:{self.tcp_port}",
            tenant_connections={} if closing else self.quota.report(self._quota_of),
        )

    def _quota_of(self, tenant: str) -> int:
        info = self.directory.cached(tenant)
        return info.max_connections if info is not None else 0

    async def _heartbeat(self, *, closing: bool = False) -> None:
        try:
            answer = await self.registry.heartbeat(self._state(closing=closing))
        except RegistryUnavailable as exc:
            HEARTBEATS.labels("failed").inc()
            log.warning("%s (quotas go on with the last known counts)", exc)
            return
        self.quota.learn(answer.tenant_connections)
        HEARTBEATS.labels("ok").inc()

    async def _heartbeats(self) -> None:
        """Report this gateway's address, load and connections per quota-limited tenant
        to the registry (for /v1/route and the other gateways' quotas), and learn the
        other gateways' connections per tenant from its answer."""
        while True:
            await self._heartbeat()
            await anyio.sleep(self.settings.heartbeat_interval)

    async def _refresh_locations(self) -> None:
        """Re-assert every live channel's location each interval, so locations come back
        after the session store lost them and expire (TTL) when a gateway dies."""
        refresh = LogicPacket.request(REFRESH_COMMAND)
        while True:
            await anyio.sleep(self.settings.location_refresh_interval)
            for channel in list(self.channels.values()):
                if channel.logged_in:
                    self._send_to_logic(channel, refresh)

    def _accept(self, conn: PacketConnection) -> None:
        if self._tg is None:
            conn.close(CloseCode.TRY_AGAIN_LATER, "gateway not ready")
            return
        self._tg.start_soon(self._serve_client, conn)

    # -- one client --------------------------------------------------------------------

    async def _serve_client(self, conn: PacketConnection) -> None:
        channel: Channel | None = None
        connections = CONNECTIONS.labels(conn.kind)
        connections.inc()
        try:
            batch: list[bytes] = []
            with anyio.move_on_after(self.settings.login_timeout):
                batch = await conn.receive()
            if not batch:
                conn.close(CloseCode.LOGIN_TIMEOUT, "no login within the login timeout")
                return
            channel, pending = await self._login(conn, batch)
            if channel is None:
                return
            if pending:
                self._forward_batch(channel, pending)
            await self._pump(channel)
        except (ConnectionClosed, LoginRefused):
            pass
        except Exception:
            log.exception("client %s failed", conn.remote_address)
            conn.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if channel is not None:
                self._drop_channel(channel)
            conn.close(CloseCode.NORMAL, "")
            connections.dec()
            reason = conn.close_reason
            CLOSES.labels(str(reason.code) if reason else "?").inc()

    async def _login(
        self, conn: PacketConnection, batch: list[bytes]
    ) -> tuple[Channel | None, list[bytes]]:
        """Handle the first packet (which must be ``login.signin``); the rest of ``batch``
        is returned to be forwarded once the login succeeded."""
        packet = self._decode_or_close(conn, batch[0])
        if packet is None:
            return None, []
        if not isinstance(packet, LogicPacket) or packet.command != Command.LOGIN_SIGNIN:
            self._refuse(conn, packet, Status.UNAUTHORIZED, "login.signin must be the first packet")
        assert isinstance(packet, LogicPacket)
        try:
            req = packet.parse_body(pb.LoginReq)
        except MalformedPacket as exc:
            self._refuse(conn, packet, Status.INVALID_PACKET_BODY, f"bad LoginReq: {exc}")
        try:
            claims = await verify_token(req.token, self.directory.lookup)
        except AuthError as exc:
            self._refuse(conn, packet, Status.UNAUTHORIZED, str(exc))
        device = req.device or DEFAULT_DEVICE
        if len(device) > MAX_DEVICE_LENGTH or not device.isprintable() or "," in device:
            self._refuse(conn, packet, Status.INVALID_PACKET_BODY, "device must be 1-32 characters")
        version = req.client_version[:MAX_CLIENT_VERSION_LENGTH]
        quotas = claims.tenant_info
        if not self.quota.admits(claims.tenant, quotas.max_connections):
            self._refuse(
                conn,
                packet,
                Status.QUOTA_EXCEEDED,
                f"tenant connection quota of {quotas.max_connections} is used up",
            )
        channel_id = f"{self.settings.gateway_id}_{claims.account}_{next(self._channel_numbers)}"
        channel = Channel(
            id=channel_id,
            conn=conn,
            tenant=claims.tenant,
            account=claims.account,
            device=device,
            client_version=version,
            meta=(
                Meta(META_TENANT, claims.tenant),
                Meta(META_ACCOUNT, claims.account),
                Meta(META_DEVICE, device),
                Meta(META_GATEWAY, self.settings.gateway_id),
                Meta(META_CLIENT_VERSION, version),
            ),
        )
        channel.meta_raw = encode_meta(channel.meta)
        if quotas.messages_per_second > 0:
            channel.bucket = TokenBucket(quotas.messages_per_second, anyio.current_time)
        self.channels[channel_id] = channel
        self.quota.acquire(channel.tenant)  # no suspension since admits(): the slot is ours
        channel.counted = True
        try:
            if not self.pool.ready.is_set():
                with anyio.move_on_after(self.settings.logic_request_timeout):
                    await self.pool.ready.wait()
            if not self._send_to_logic(channel, packet):
                self._refuse(conn, packet, Status.SYSTEM_EXCEPTION, "no logic node available")
            with anyio.move_on_after(self.settings.logic_request_timeout):
                await channel.login_done.wait()
            answer = channel.login_answer
            if answer is None:
                self._refuse(conn, packet, Status.SYSTEM_EXCEPTION, "login timed out upstream")
            conn.send(answer.encode())
            if answer.status != Status.SUCCESS:
                LOGINS.labels("refused_upstream").inc()
                conn.close(CloseCode.POLICY_VIOLATION, f"login failed with status {answer.status}")
                raise LoginRefused
        except BaseException:
            self._drop_channel(channel)
            raise
        channel.logged_in = True
        LOGINS.labels("ok").inc()
        return channel, batch[1:]

    def _refuse(
        self, conn: PacketConnection, packet: LogicPacket | BasicPacket, status: int, reason: str
    ) -> NoReturn:
        """Answer ``packet`` with ``status`` and ``reason``, close, raise LoginRefused."""
        LOGINS.labels(Status(status).name.lower()).inc()
        if isinstance(packet, LogicPacket):
            answer = packet.replace(meta=(), dest="").response(status, _error_body(reason))
            conn.send(answer.encode())
        code = {
            Status.UNAUTHORIZED: CloseCode.UNAUTHORIZED,
            Status.SYSTEM_EXCEPTION: CloseCode.TRY_AGAIN_LATER,
            Status.QUOTA_EXCEEDED: CloseCode.QUOTA_EXCEEDED,
        }.get(Status(status), CloseCode.POLICY_VIOLATION)
        conn.close(code, reason)
        raise LoginRefused(reason)

    def _decode_or_close(
        self, conn: PacketConnection, raw: bytes
    ) -> LogicPacket | BasicPacket | None:
        try:
            return decode_packet(raw, max_size=self.settings.max_packet_size)
        except PacketTooLarge as exc:
            conn.close(CloseCode.TOO_BIG, str(exc))
        except ProtocolError as exc:
            conn.close(CloseCode.PROTOCOL_ERROR, str(exc))
        return None

    async def _pump(self, channel: Channel) -> None:
        conn = channel.conn
        # One timer per connection rather than a cancel scope per receive: a scope costs
        # more than handling the packets it waits for.
        watchdog = _IdleWatchdog(conn, self.settings.idle_timeout)
        try:
            # Packets are handled in the transport's callback, as they are decoded: no
            # task wake-up per read. A handler error closes the connection with 1011.
            conn.set_receiver(lambda batch: self._forward_batch(channel, batch))
            await conn.wait_closed()
        finally:
            watchdog.cancel()

    def _forward_batch(self, channel: Channel, batch: list[bytes]) -> bool:
        """Handle client packets in order; False once the connection was closed."""
        conn = channel.conn
        for raw in batch:
            packet = self._decode_or_close(conn, raw)
            if packet is None:
                return False
            if isinstance(packet, BasicPacket):
                if packet.code == BasicCode.PING:
                    conn.send(PONG)
                continue
            if packet.flag != Flag.REQUEST:
                continue  # clients only send requests; stray responses are ignored
            if packet.command == Command.LOGIN_SIGNIN:
                self._answer(channel, packet, Status.FORBIDDEN, "already logged in")
                continue
            if packet.command.startswith(INTERNAL_PREFIXES):
                reason = f"unknown command {packet.command!r}"
                self._answer(channel, packet, Status.NOT_IMPLEMENTED, reason)
                continue
            if (
                channel.bucket is not None
                and packet.command in RATE_LIMITED_COMMANDS
                and not channel.bucket.allow()
            ):
                reason = f"over {channel.bucket.rate:g} messages per second"
                self._answer(channel, packet, Status.RATE_LIMITED, reason)
                continue
            if not self._send_to_logic(channel, packet):
                self._answer(channel, packet, Status.SYSTEM_EXCEPTION, "no logic node available")
        return True

    def _answer(self, channel: Channel, packet: LogicPacket, status: int, reason: str) -> None:
        answer = packet.replace(meta=(), channel_id=channel.id).response(
            status, _error_body(reason)
        )
        self._deliver(channel, answer.encode())

    def _drop_channel(self, channel: Channel) -> None:
        self.channels.pop(channel.id, None)
        if channel.counted:
            channel.counted = False
            self.quota.release(channel.tenant)
        if channel.logged_in:
            bye = LogicPacket.request(Command.LOGIN_SIGNOUT)
            self._send_to_logic(channel, bye)

    # -- logic nodes -------------------------------------------------------------------

    def _pick_link(self, channel: Channel, command: str) -> LogicLink | None:
        if channel.routes is None:
            facts = ClientFacts(
                tenant=channel.tenant,
                account=channel.account,
                version=channel.client_version or None,
                platform=channel.device,
                region=self.settings.region,
            )
            channel.routes = self.pool.routes(facts)
        return channel.routes.link_for(command)

    def _send_to_logic(self, channel: Channel, packet: LogicPacket) -> bool:
        link = self._pick_link(channel, packet.command)
        if link is None:
            return False
        # = packet.replace(channel_id=channel.id, meta=channel.meta).encode(), byte for byte
        return link.send(packet.encode_with(channel_id=channel.id, meta=channel.meta_raw))

    def _on_logic_packet(self, link: LogicLink, packet: LogicPacket, raw: bytes) -> None:
        if packet.flag == Flag.PUSH:
            self._on_push(packet)
            return
        channel = self.channels.get(packet.channel_id)
        if channel is None or packet.command.startswith(INTERNAL_PREFIXES):
            return  # the client left meanwhile, or an answer to the gateway's own request
        if not channel.logged_in and packet.command == Command.LOGIN_SIGNIN:
            channel.login_answer = packet.replace(meta=()) if packet.meta else packet
            channel.login_done.set()
            return
        # The logic node answers without meta (it strips it): then the bytes it sent are
        # already what the client gets, and re-encoding them would only copy them.
        self._deliver(channel, packet.encode_without_meta() if packet.meta else raw)
        if packet.command == Command.LOGIN_SIGNOUT:
            channel.logged_in = False  # the logic node already removed the location
            channel.conn.close(CloseCode.NORMAL, "signed out")

    def _on_push(self, packet: LogicPacket) -> None:
        targets = packet.meta_value(META_CHANNELS)
        if not targets:
            return
        data = packet.encode_without_meta(channel_id="")
        kickout = packet.command == Command.LOGIN_SIGNIN
        for channel_id in targets.split(","):
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            self._deliver(channel, data)
            if kickout:
                channel.conn.close(CloseCode.KICKED_OUT, "kicked out by a login on the same device")

    def _deliver(self, channel: Channel, data: bytes) -> None:
        if len(data) > self.settings.max_packet_size:
            log.warning("dropped a %d-byte packet for %s: over the limit", len(data), channel.id)
            return
        if not channel.conn.send(data):
            channel.conn.close(CloseCode.SLOW_CONSUMER, "client too slow: send buffer full")


class _IdleWatchdog:
    """Closes ``conn`` with IDLE_TIMEOUT once no frame arrived for ``idle`` seconds.

    One loop timer, re-armed for the time left whenever it fires early: activity only
    moves ``conn.last_activity`` forward, it never touches the timer.
    """

    __slots__ = ("_conn", "_handle", "_idle", "_loop")

    def __init__(self, conn: PacketConnection, idle: float) -> None:
        self._conn = conn
        self._idle = idle
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_at(conn.last_activity + idle, self._check)

    def _check(self) -> None:
        conn = self._conn
        if conn.is_closed:
            return
        deadline = conn.last_activity + self._idle
        if self._loop.time() >= deadline:
            conn.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
        else:
            self._handle = self._loop.call_at(deadline, self._check)

    def cancel(self) -> None:
        """Stop watching (the pump has ended)."""
        self._handle.cancel()
