"""The gateway: client connections in, logic nodes behind.

Theory of operation
-------------------
:class:`Gateway` owns the listeners (WebSocket and TCP), the registry heartbeats and
the location re-assert loop, and wires the parts that do the work, one job each:

- :mod:`data_plane.gateway.session`: each client connection from accept to close (a
  task for its login deadline and login, then callbacks: the packet pump, the end);
- :mod:`data_plane.gateway.idle`: the idle timeout of every logged-in channel;
- :mod:`data_plane.gateway.admission`: the login (token, device, quota, the logic
  node's answer);
- :mod:`data_plane.gateway.router`: the channel table and the packets between channels
  and logic nodes (responses, pushes, kickouts, slow consumers);
- :mod:`data_plane.gateway.revocation`: closing the connections a disabled tenant, a
  ban or a revoked key no longer admits, on each tenant-directory change;
- :mod:`data_plane.gateway.clock`: the time every timer reads, injected so tests
  advance it instead of sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NoReturn

import anyio
from anyio.abc import TaskGroup, TaskStatus

from data_plane.cluster.patience import Patience
from data_plane.cluster.protocol import REFRESH_COMMAND
from data_plane.cluster.registry import NodeState, RegistryClient, RegistryUnavailable
from data_plane.cluster.tenants import TenantDirectory
from data_plane.gateway.admission import LoginAdmission
from data_plane.gateway.channel import Channel
from data_plane.gateway.clock import Clock, LoopClock
from data_plane.gateway.logic_pool import LogicPool
from data_plane.gateway.quota import ConnectionQuota
from data_plane.gateway.revocation import Revocations
from data_plane.gateway.router import ChannelRouter
from data_plane.gateway.session import ClientSessions
from data_plane.gateway.settings import GatewaySettings
from data_plane.gateway.throttle import Throttle
from data_plane.metrics import HEARTBEATS
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.tcp import serve_tcp
from data_plane.transport.ws import serve_ws
from data_plane.wire import LogicPacket

log = logging.getLogger(__name__)

LOGIN_MAX_INBOX = 16
"""Packets read ahead of a login that is not verified yet (then reading pauses): the
login and a few pipelined requests, never megabytes of an unauthenticated peer's."""


class Gateway:
    """A gateway process's state: its clients, channels and logic links.

    ``clock`` defaults to the running loop's (so construct it inside the loop).
    """

    def __init__(
        self, settings: GatewaySettings, directory: TenantDirectory, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.clock: Clock = clock or LoopClock()
        self.registry = RegistryClient(settings.control_url, settings.cluster_secret)
        self.quota = ConnectionQuota()
        """Channels per tenant here and on the other gateways (the connection quota)."""
        self.router = ChannelRouter(settings, self.registry, self.quota, self.clock)
        self.throttle = Throttle(settings, self.clock.now)
        self.admission = LoginAdmission(settings, directory, self.router, self.clock, self.throttle)
        self.sessions = ClientSessions(
            settings, self.admission, self.router, self.clock, self.throttle
        )
        self.revocations = Revocations(self.router)
        """Closes the connections a tenant-directory change revoked."""
        directory.subscribe(self.revocations.on_tenants)
        self.draining = False
        self._tg: TaskGroup | None = None
        self.ws_port = settings.ws_port
        self.registered = False
        """Whether the last heartbeat reached the registry (``/readyz``)."""
        self._heartbeat_patience = Patience(log)
        self.tcp_port = settings.tcp_port

    @property
    def channels(self) -> dict[str, Channel]:
        """Every channel of this gateway, by id."""
        return self.router.channels

    @property
    def pool(self) -> LogicPool:
        """The links to the logic nodes."""
        return self.router.pool

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports started once both listeners are bound."""
        s = self.settings
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.directory.run)
            await tg.start(self.pool.run)
            tg.start_soon(self.router.holes.run)
            tg.start_soon(
                reassert_locations,
                self.clock,
                s.location_refresh_interval,
                self.channels,
                self.router.send_to_logic,
            )
            # Connections start with the tiny budget of a login; admission raises it.
            ws = await serve_ws(
                s.ws_host,
                s.ws_port,
                self._accept,
                max_packet_size=s.login_max_packet_size,
                max_send_buffer=s.login_send_buffer,
                max_frame_size=s.max_packet_size + 1024,
                max_inbox=LOGIN_MAX_INBOX,
                clock=self.clock.now,
                reuse_port=s.reuse_port,
            )
            tcp = await serve_tcp(
                s.tcp_host,
                s.tcp_port,
                self._accept,
                max_packet_size=s.login_max_packet_size,
                max_send_buffer=s.login_send_buffer,
                max_inbox=LOGIN_MAX_INBOX,
                clock=self.clock.now,
                reuse_port=s.reuse_port,
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
            self.registered = False
            self._heartbeat_patience.failed("%s (quotas go on with the last known counts)", exc)
            return
        self.quota.learn(answer.tenant_connections)
        HEARTBEATS.labels("ok").inc()
        self.registered = not closing
        self._heartbeat_patience.succeeded("heartbeats reach the registry again")

    async def _heartbeats(self) -> None:
        """Report this gateway's address, load and connections per quota-limited tenant
        to the registry (for /v1/route and the other gateways' quotas), and learn the
        other gateways' connections per tenant from its answer."""
        while True:
            await self._heartbeat()
            await self.clock.sleep(self.settings.heartbeat_interval)

    def _accept(self, conn: PacketConnection) -> None:
        if self._tg is None:
            conn.close(CloseCode.TRY_AGAIN_LATER, "gateway not ready")
            return
        self._tg.start_soon(self.sessions.serve, conn)


async def reassert_locations(
    clock: Clock,
    interval: float,
    channels: Mapping[str, Channel],
    send: Callable[[Channel, LogicPacket], object],
) -> NoReturn:
    """Every ``interval`` on ``clock``, re-assert the location of each logged-in channel
    (``send`` a refresh for it to its logic node), so locations come back after the
    session store lost them and expire (TTL) when a gateway dies."""
    refresh = LogicPacket.request(REFRESH_COMMAND)
    while True:
        await clock.sleep(interval)
        for channel in list(channels.values()):
            if channel.logged_in:
                send(channel, refresh)
