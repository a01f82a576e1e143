"""The logic node: accepts gateway links and runs requests through the router.

Each gateway link starts with a ``cluster.handshake`` whose secret must equal the
cluster secret (compared in constant time); a wrong secret gets Unauthorized and the
link is closed, a right one gets Success with this node's id and the services it runs
(the gateway sends it only their commands). Then every packet is a client request
carrying the gateway's meta.
Each request runs as its own task, started in arrival order, so handlers that queue
work without awaiting first (the message store's group commit) keep each client's
order. A packet that does not decode is logged and dropped: it can only come from a
buggy gateway, and the link stays up for everyone else.

Request tasks are plain asyncio tasks, not anyio task-group tasks: anyio's
``start_soon`` cost ~50 µs of CPU per task on our machine against ~8 µs for
``create_task``, once per message. They keep the task group's guarantees by hand:
the server owns every request task (a set, emptied as they finish), cancels the
ones still running when it stops and awaits them all before ``run`` returns; tasks
are created in arrival order and asyncio starts them in creation order; and one
request cannot take the node down, because :meth:`Router.dispatch` turns every
failure into a status (anything that still escapes is logged when its task ends).

A handshake whose ``role`` meta is ``control`` opens the control plane's link
(:mod:`data_plane.cluster.server_api`): it is not registered as a gateway (nothing is
pushed to it) and may send the ``server.*`` commands only; a gateway's link may send
anything but those (a ``server.*`` request there is answered Forbidden).

Bounds: until its handshake succeeds a link gets a tiny budget (a handshake-sized
packet limit and send buffer; no cluster secret needed to reach it), and at most
``max_in_flight_per_link`` requests of one link run at once: past that the node stops
reading the link (its inbox fills, then the socket) until requests end, so a flood
becomes back-pressure on that gateway, never unbounded tasks. A gateway that does not
read its answers is closed as a slow consumer once its send buffer is full.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import anyio
from anyio.abc import TaskGroup, TaskStatus

from data_plane.cluster.protocol import (
    HANDSHAKE_COMMAND,
    LINK_MAX_PACKET_SIZE,
    META_ACCOUNT,
    META_CLIENT_VERSION,
    META_DEVICE,
    META_GATEWAY,
    META_NODE,
    META_SECRET,
    META_SERVICES,
    META_TENANT,
)
from data_plane.cluster.server_api import META_ROLE, PREFIX, ROLE_CONTROL
from data_plane.cluster.services import format_services
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.router import Router
from data_plane.logic.settings import LogicSettings
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import serve_tcp
from data_plane.wire import Flag, LogicPacket, Meta, ProtocolError, Status, decode_packet, pb

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0
LINK_SEND_BUFFER = 64 * 1024 * 1024
HANDSHAKE_MAX_PACKET_SIZE = 4 * 1024
"""The largest packet before the handshake succeeded (a handshake is ~100 bytes)."""
HANDSHAKE_SEND_BUFFER = 16 * 1024
"""The send bound before the handshake succeeded."""
HANDSHAKE_MAX_INBOX = 16
"""Packets read ahead of the handshake (then reading pauses until it succeeds)."""


class LinkLoad:
    """The requests of one gateway link that are running, and a wake-up for the link's
    reader when one ends."""

    __slots__ = ("_room", "running")

    def __init__(self) -> None:
        self.running = 0
        self._room: asyncio.Event | None = None

    def done(self, _task: object = None) -> None:
        """One request ended (a task's done callback)."""
        self.running -= 1
        if self._room is not None:
            self._room.set()

    async def wait_for_room(self, cap: int) -> None:
        """Return once fewer than ``cap`` requests are running."""
        while 0 < cap <= self.running:
            self._room = asyncio.Event()
            await self._room.wait()
        self._room = None


class LogicServer:
    """Serves gateway links until cancelled."""

    def __init__(self, settings: LogicSettings, router: Router, hub: GatewayHub) -> None:
        self.settings = settings
        self.router = router
        self.hub = hub
        self.port = settings.port
        self._tg: TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests: set[asyncio.Task[None]] = set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen for gateways; reports started once bound."""
        self._loop = asyncio.get_running_loop()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            server = await serve_tcp(
                self.settings.host,
                self.settings.port,
                self._accept,
                max_packet_size=HANDSHAKE_MAX_PACKET_SIZE,
                max_send_buffer=HANDSHAKE_SEND_BUFFER,
                max_inbox=HANDSHAKE_MAX_INBOX,
            )
            self.port = server.sockets[0].getsockname()[1]
            log.info("logic node %s listening on %s", self.settings.node_id, self.port)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                server.close()
                with anyio.CancelScope(shield=True):
                    await self._stop_requests()
                self.hub.close_all()

    async def _stop_requests(self) -> None:
        """Cancel the request tasks still running and wait until every one has ended."""
        while self._requests:
            running = list(self._requests)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self._requests.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("request task failed", exc_info=exc)

    def _accept(self, conn: PacketConnection) -> None:
        assert self._tg is not None
        self._tg.start_soon(self._serve_gateway, conn)

    async def _serve_gateway(self, conn: PacketConnection) -> None:
        gateway_id = ""
        control = False
        try:
            with anyio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
                gateway_id, control, pending = await self._handshake(conn)
            if scope.cancelled_caught:
                conn.close(CloseCode.POLICY_VIOLATION, "no handshake within the timeout")
                return
            if not gateway_id:
                return
            conn.set_limits(max_packet_size=LINK_MAX_PACKET_SIZE, max_send_buffer=LINK_SEND_BUFFER)
            if control:  # the control plane: never a push target
                log.info("control plane %s linked from %s", gateway_id, conn.remote_address)
            else:
                self.hub.attach(gateway_id, conn)
                log.info("gateway %s linked from %s", gateway_id, conn.remote_address)
            load, cap = LinkLoad(), self.settings.max_in_flight_per_link
            batch = pending
            while True:
                start = 0
                while start < len(batch):
                    # Not reading meanwhile: the inbox fills, then reading pauses.
                    await load.wait_for_room(cap)
                    start = self._dispatch_batch(conn, batch, start, load, cap, control)
                batch = await conn.receive()
        except ConnectionClosed as exc:
            who = gateway_id or conn.remote_address
            log.info("gateway %s link closed (%d: %s)", who, exc.code, exc.reason)
        finally:
            if gateway_id and not control:
                self.hub.detach(gateway_id, conn)
            conn.close(CloseCode.NORMAL, "")

    async def _handshake(self, conn: PacketConnection) -> tuple[str, bool, list[bytes]]:
        """The link's id, whether it is the control plane's, and the packets read after
        the handshake; ("", False, []) once the link was refused and closed."""
        batch = await conn.receive()
        try:
            hello = decode_packet(batch[0], max_size=LINK_MAX_PACKET_SIZE)
        except ProtocolError as exc:
            conn.close(CloseCode.PROTOCOL_ERROR, str(exc))
            return "", False, []
        if not isinstance(hello, LogicPacket) or hello.command != HANDSHAKE_COMMAND:
            conn.close(CloseCode.POLICY_VIOLATION, "cluster.handshake must come first")
            return "", False, []
        secret = hello.meta_value(META_SECRET) or ""
        gateway_id = hello.meta_value(META_GATEWAY) or ""
        if not hmac.compare_digest(secret.encode(), self.settings.cluster_secret.encode()):
            refusal = hello.replace(meta=()).response(
                Status.UNAUTHORIZED, pb.ErrorResp(message="wrong cluster secret")
            )
            conn.send(refusal.encode())
            conn.close(CloseCode.UNAUTHORIZED, "wrong cluster secret")
            log.warning("refused a gateway link from %s: wrong secret", conn.remote_address)
            return "", False, []
        if not gateway_id:
            conn.close(CloseCode.POLICY_VIOLATION, "handshake without a gateway id")
            return "", False, []
        announce = (
            Meta(META_NODE, self.settings.node_id),
            Meta(META_SERVICES, format_services(self.settings.services)),
        )
        welcome = hello.replace(meta=announce).response()
        conn.send(welcome.encode())
        return gateway_id, hello.meta_value(META_ROLE) == ROLE_CONTROL, batch[1:]

    def _dispatch_batch(
        self,
        conn: PacketConnection,
        batch: list[bytes],
        start: int,
        load: LinkLoad,
        cap: int,
        control: bool = False,
    ) -> int:
        """Start the requests of ``batch`` from ``start`` on while fewer than ``cap``
        run; returns where it stopped (``len(batch)`` once all are started). On the
        control plane's link (``control``) only ``server.*`` commands are served, and
        only there."""
        loop = self._loop
        assert loop is not None
        dispatch = self.router.dispatch
        for index in range(start, len(batch)):
            if 0 < cap <= load.running:
                return index
            raw = batch[index]
            try:
                packet = decode_packet(raw, max_size=LINK_MAX_PACKET_SIZE)
            except ProtocolError as exc:
                log.error("undecodable packet from gateway %s: %s", conn.remote_address, exc)
                continue
            if not isinstance(packet, LogicPacket) or packet.flag != Flag.REQUEST:
                continue
            # One pass over the meta (the first entry of a key wins, as in meta_value).
            values: dict[str, str] = {}
            for entry in packet.meta:
                values.setdefault(entry.key, entry.value)
            get = values.get
            request = Request(
                packet,
                get(META_TENANT, ""),
                get(META_ACCOUNT, ""),
                get(META_DEVICE, ""),
                packet.channel_id,
                get(META_GATEWAY, ""),
                get(META_CLIENT_VERSION, ""),
                conn,
                # A control link's answers (history pages) may use the link's size.
                LINK_MAX_PACKET_SIZE if control else self.settings.max_packet_size,
            )
            if not request.tenant or not request.account:
                request.fail(Status.UNAUTHORIZED, "request without an identity")
                continue
            if packet.command.startswith(PREFIX) != control:
                link = "the control plane's link" if control else "a gateway's link"
                request.fail(Status.FORBIDDEN, f"{packet.command} is refused on {link}")
                continue
            task = loop.create_task(dispatch(request))
            self._requests.add(task)
            task.add_done_callback(self._request_done)
            load.running += 1
            task.add_done_callback(load.done)
        return len(batch)
