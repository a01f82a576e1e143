"""The logic node: accepts gateway links and runs requests through the router.

Each gateway link starts with a ``cluster.handshake`` whose secret must equal the
cluster secret (compared in constant time); a wrong secret gets Unauthorized and the
link is closed. Then every packet is a client request carrying the gateway's meta.
Requests run as tasks of the node's task group, started in arrival order, so handlers
that queue work without awaiting first (the message store's group commit) keep each
client's order. A packet that does not decode is logged and dropped: it can only come
from a buggy gateway, and the link stays up for everyone else.
"""

from __future__ import annotations

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
    META_TENANT,
)
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


class LogicServer:
    """Serves gateway links until cancelled."""

    def __init__(self, settings: LogicSettings, router: Router, hub: GatewayHub) -> None:
        self.settings = settings
        self.router = router
        self.hub = hub
        self.port = settings.port
        self._tg: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen for gateways; reports started once bound."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            server = await serve_tcp(
                self.settings.host,
                self.settings.port,
                self._accept,
                max_packet_size=LINK_MAX_PACKET_SIZE,
                max_send_buffer=LINK_SEND_BUFFER,
            )
            self.port = server.sockets[0].getsockname()[1]
            log.info("logic node %s listening on %s", self.settings.node_id, self.port)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                server.close()
                self.hub.close_all()

    def _accept(self, conn: PacketConnection) -> None:
        assert self._tg is not None
        self._tg.start_soon(self._serve_gateway, conn)

    async def _serve_gateway(self, conn: PacketConnection) -> None:
        gateway_id = ""
        try:
            with anyio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
                gateway_id, pending = await self._handshake(conn)
            if scope.cancelled_caught:
                conn.close(CloseCode.POLICY_VIOLATION, "no handshake within the timeout")
                return
            if not gateway_id:
                return
            self.hub.attach(gateway_id, conn)
            log.info("gateway %s linked from %s", gateway_id, conn.remote_address)
            self._dispatch_batch(conn, pending)
            while True:
                self._dispatch_batch(conn, await conn.receive())
        except ConnectionClosed:
            log.info("gateway %s link closed", gateway_id or conn.remote_address)
        finally:
            if gateway_id:
                self.hub.detach(gateway_id, conn)
            conn.close(CloseCode.NORMAL, "")

    async def _handshake(self, conn: PacketConnection) -> tuple[str, list[bytes]]:
        batch = await conn.receive()
        try:
            hello = decode_packet(batch[0], max_size=LINK_MAX_PACKET_SIZE)
        except ProtocolError as exc:
            conn.close(CloseCode.PROTOCOL_ERROR, str(exc))
            return "", []
        if not isinstance(hello, LogicPacket) or hello.command != HANDSHAKE_COMMAND:
            conn.close(CloseCode.POLICY_VIOLATION, "cluster.handshake must come first")
            return "", []
        secret = hello.meta_value(META_SECRET) or ""
        gateway_id = hello.meta_value(META_GATEWAY) or ""
        if not hmac.compare_digest(secret.encode(), self.settings.cluster_secret.encode()):
            refusal = hello.replace(meta=()).response(
                Status.UNAUTHORIZED, pb.ErrorResp(message="wrong cluster secret")
            )
            conn.send(refusal.encode())
            conn.close(CloseCode.UNAUTHORIZED, "wrong cluster secret")
            log.warning("refused a gateway link from %s: wrong secret", conn.remote_address)
            return "", []
        if not gateway_id:
            conn.close(CloseCode.POLICY_VIOLATION, "handshake without a gateway id")
            return "", []
        welcome = hello.replace(meta=(Meta(META_NODE, self.settings.node_id),)).response()
        conn.send(welcome.encode())
        return gateway_id, batch[1:]

    def _dispatch_batch(self, conn: PacketConnection, batch: list[bytes]) -> None:
        assert self._tg is not None
        for raw in batch:
            try:
                packet = decode_packet(raw, max_size=LINK_MAX_PACKET_SIZE)
            except ProtocolError as exc:
                log.error("undecodable packet from gateway %s: %s", conn.remote_address, exc)
                continue
            if not isinstance(packet, LogicPacket) or packet.flag != Flag.REQUEST:
                continue
            request = Request(
                packet=packet,
                tenant=packet.meta_value(META_TENANT) or "",
                account=packet.meta_value(META_ACCOUNT) or "",
                device=packet.meta_value(META_DEVICE) or "",
                channel_id=packet.channel_id,
                gateway_id=packet.meta_value(META_GATEWAY) or "",
                client_version=packet.meta_value(META_CLIENT_VERSION) or "",
                conn=conn,
                max_answer_size=self.settings.max_packet_size,
            )
            if not request.tenant or not request.account:
                request.fail(Status.UNAUTHORIZED, "request without an identity")
                continue
            self._tg.start_soon(self.router.dispatch, request)
