"""One client connection from accept to close: login deadline, pump, end.

Each client connection (WebSocket or TCP, one :class:`PacketConnection` either way)
gets one task running :meth:`ClientSessions.serve` for as long as its login takes;
a logged-in connection runs on callbacks alone (no task while it is idle):

1. **Login.** The first packet must arrive within ``login_timeout`` (else close 4004);
   :class:`~data_plane.gateway.admission.LoginAdmission` handles it.
2. **Pump.** Every further packet is decoded (header only; the body passes through)
   in the transport's callback as it arrives, pings are answered here, and logic
   packets are forwarded with the client's meta replaced by the gateway's (tenant,
   account, device, gateway). A connection silent for ``idle_timeout`` is closed
   (4005) by the gateway's :class:`~data_plane.gateway.idle.IdleSweeper`. Each request
   must pass the rate limits
   (:mod:`data_plane.gateway.throttle`: 429, and close 4008 for a client that keeps
   flooding), and at most ``max_in_flight`` of a connection's requests are at a logic
   node at once: past that the connection is not read (its packets already read wait
   in the channel's backlog) until answers come back. An answer lost with a logic link
   would hold the connection forever, so a backlog that sees no answer for
   ``logic_request_timeout`` forgets the requests in flight and goes on.
3. **End.** Once the connection ended (by either side, at any stage), the channel is
   dropped and the logic node is told (``login.signout``), so it removes the location
   if that location still belongs to this channel: by the login task when the login
   did not succeed, else by the connection's close callback.

Every timer reads the injected :class:`~data_plane.gateway.clock.Clock`, and the
connection's ``last_activity`` must be stamped by the same clock (the gateway passes
``clock.now`` to its listeners).
"""

from __future__ import annotations

import logging

from data_plane.cluster.protocol import INTERNAL_PREFIXES
from data_plane.gateway import events
from data_plane.gateway.admission import LoginAdmission, LoginRefused, decode_or_close
from data_plane.gateway.channel import PONG, Channel
from data_plane.gateway.clock import Clock
from data_plane.gateway.idle import IdleSweeper
from data_plane.gateway.router import ChannelRouter
from data_plane.gateway.settings import GatewaySettings
from data_plane.gateway.throttle import Throttle
from data_plane.metrics import CLOSES, CONNECTIONS
from data_plane.transport.close import close_code_label
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.errors import ConnectionClosed
from data_plane.wire import BasicCode, BasicPacket, Command, Flag, Status

log = logging.getLogger(__name__)


class ClientSessions:
    """Serves client connections: one :meth:`serve` call per connection."""

    def __init__(
        self,
        settings: GatewaySettings,
        admission: LoginAdmission,
        router: ChannelRouter,
        clock: Clock,
        throttle: Throttle,
    ) -> None:
        self.settings = settings
        self.admission = admission
        self.router = router
        self.clock = clock
        self.throttle = throttle
        self.idle = IdleSweeper(settings.idle_timeout, clock)
        """The idle timeout of every attached channel."""
        router.on_answer = self.resume

    async def serve(self, conn: PacketConnection) -> None:
        """Run ``conn``'s login; a logged-in connection is then :meth:`attach`-ed and
        this returns while it lives on. Never raises (errors close it with 1011)."""
        channel: Channel | None = None
        CONNECTIONS.labels(conn.kind).inc()
        attached = False
        try:
            batch: list[bytes] = []
            with self.clock.move_on_after(self.settings.login_timeout):
                batch = await conn.receive()
            if not batch:
                conn.close(CloseCode.LOGIN_TIMEOUT, "no login within the login timeout")
                return
            channel, pending = await self.admission.admit(conn, batch)
            if channel is None:
                return
            if pending:
                self.forward_batch(channel, pending)
            self.attach(channel)
            attached = True
        except (ConnectionClosed, LoginRefused):
            pass
        except Exception:
            log.exception("client %s failed", conn.remote_address)
            conn.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if not attached:
                self._end(conn, channel)

    def attach(self, channel: Channel) -> None:
        """Serve a logged-in ``channel`` from now until its connection closes (by
        either side, or by the idle timeout), then end it: all on callbacks, no task.

        Packets are handled in the transport's callback, as they are decoded (no task
        wake-up per read); a handler error closes the connection with 1011."""
        pump = _Pump(self, channel)
        channel.conn.set_receiver(pump)
        self.idle.watch(channel)
        channel.conn.call_when_closed(pump.closed)

    def _end(self, conn: PacketConnection, channel: Channel | None) -> None:
        """The connection ended (or is ended here): forget its channel, count it."""
        if channel is not None:
            self.idle.forget(channel)
            self.router.drop_channel(channel)
        conn.close(CloseCode.NORMAL, "")
        if channel is not None:
            events.disconnect(channel)
        CONNECTIONS.labels(conn.kind).dec()
        reason = conn.close_reason
        CLOSES.labels(close_code_label(reason.code) if reason else "?").inc()

    def forward_batch(self, channel: Channel, batch: list[bytes]) -> bool:
        """Handle client packets in order; False once the connection was closed."""
        conn, router, cap = channel.conn, self.router, self.settings.max_in_flight
        for index, raw in enumerate(batch):
            if 0 < cap <= channel.in_flight:
                self._hold(channel, batch[index:])
                return True
            packet = decode_or_close(conn, raw, self.settings.max_packet_size)
            if packet is None:
                return False
            if isinstance(packet, BasicPacket):
                if packet.code == BasicCode.PING:
                    conn.send(PONG)
                continue
            if packet.flag != Flag.REQUEST:
                continue  # clients only send requests; stray responses are ignored
            if packet.command == Command.LOGIN_SIGNIN:
                router.answer(channel, packet, Status.FORBIDDEN, "already logged in")
                continue
            if packet.command.startswith(INTERNAL_PREFIXES):
                reason = f"unknown command {packet.command!r}"
                router.answer(channel, packet, Status.NOT_IMPLEMENTED, reason)
                continue
            refusal = self.throttle.refusal(channel, packet.command)
            if refusal is not None:
                router.answer(channel, packet, Status.RATE_LIMITED, refusal)
                if self.throttle.strike(channel):
                    conn.close(CloseCode.RATE_LIMITED, "kept sending over the rate limit")
                    return False
                continue
            if not router.send_to_logic(channel, packet):
                router.answer(channel, packet, Status.SYSTEM_EXCEPTION, "no logic node available")
                continue
            channel.in_flight += 1
        return True

    # -- requests in flight ------------------------------------------------------------

    def _hold(self, channel: Channel, rest: list[bytes]) -> None:
        """Keep ``rest`` for later and stop reading ``channel`` until answers come."""
        if channel.backlog is None:
            channel.backlog = rest
        else:
            channel.backlog.extend(rest)
        channel.conn.hold_reading(True)
        if channel.stall_timer is None:
            self._arm_stall_timer(channel)

    def _arm_stall_timer(self, channel: Channel) -> None:
        progress = channel.answers
        when = self.clock.now() + self.settings.logic_request_timeout
        channel.stall_timer = self.clock.call_at(when, lambda: self._stalled(channel, progress))

    def _stalled(self, channel: Channel, progress: int) -> None:
        channel.stall_timer = None
        if channel.conn.is_closed or not channel.backlog:
            return
        if channel.answers == progress:
            # No answer for a whole request timeout: those requests went down with a
            # logic link (their answers will never come), so they no longer count.
            channel.in_flight = 0
            self.resume(channel)
        else:
            self._arm_stall_timer(channel)

    def resume(self, channel: Channel) -> None:
        """An answer came back for ``channel``: handle its backlog while there is room,
        and read it again once the backlog is empty (the router's ``on_answer``)."""
        batch = channel.backlog
        if not batch or 0 < self.settings.max_in_flight <= channel.in_flight:
            return
        if channel.stall_timer is not None:
            channel.stall_timer.cancel()
            channel.stall_timer = None
        channel.backlog = None
        if self.forward_batch(channel, batch) and not channel.backlog:
            channel.conn.hold_reading(False)


class _Pump:
    """The callbacks of one attached channel: its packets and its end (an object of
    two slots rather than two closures, one per connection)."""

    __slots__ = ("_channel", "_sessions")

    def __init__(self, sessions: ClientSessions, channel: Channel) -> None:
        self._sessions = sessions
        self._channel = channel

    def __call__(self, batch: list[bytes]) -> None:
        self._sessions.forward_batch(self._channel, batch)

    def closed(self) -> None:
        channel = self._channel
        self._sessions._end(channel.conn, channel)
