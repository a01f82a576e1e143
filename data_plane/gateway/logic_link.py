"""The gateway's persistent link to one logic node.

One TCP connection per logic node carries every client of this gateway (multiplexed by
channel id). The link dials, sends the ``cluster.handshake`` with the cluster secret,
and learns the node's id and services from the answer; then it hands every packet the
logic node sends to ``on_packet``, decoded and as the bytes it came in, straight from
the transport's callback. An exception there closes
the link (1011, logged) and it redials. When the connection drops it redials with
capped exponential back-off; while it is down, :meth:`send` returns False and the
gateway answers its clients with a clear status.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import anyio

from data_plane.cluster.patience import Patience
from data_plane.cluster.protocol import (
    HANDSHAKE_COMMAND,
    LINK_MAX_PACKET_SIZE,
    META_GATEWAY,
    META_NODE,
    META_SECRET,
    META_SERVICES,
)
from data_plane.cluster.services import ALL_SERVICES
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import TcpConnection, connect_tcp
from data_plane.wire import LogicPacket, Meta, ProtocolError, Status, decode_packet

log = logging.getLogger(__name__)

LINK_SEND_BUFFER = 64 * 1024 * 1024


def _announced_services(value: str | None) -> frozenset[str]:
    """The services of a handshake answer's ``services`` meta. A node that announces
    none predates services and runs them all; names this gateway does not know are kept
    (no command of this gateway's maps to them, so they are never picked)."""
    if value is None:
        return frozenset(ALL_SERVICES)
    return frozenset(name.strip() for name in value.split(",") if name.strip())


class HandshakeRefused(Exception):
    """The logic node refused the handshake (wrong cluster secret)."""


class LogicLink:
    """A reconnecting link to the logic node at ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        gateway_id: str,
        cluster_secret: str,
        on_packet: Callable[[LogicLink, LogicPacket, bytes], None],
        on_state: Callable[[LogicLink], None],
        max_packet_size: int,
        handshake_timeout: float = 5.0,
        max_backoff: float = 2.0,
        zone: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.node_id = self.address
        self.zone = zone
        """The logic node's zone, as the registry reports it ("" when unknown)."""
        self.services: frozenset[str] = frozenset(ALL_SERVICES)
        """The services the node runs, as its last handshake answer announced them."""
        self._gateway_id = gateway_id
        self._secret = cluster_secret
        self._on_packet = on_packet
        self._on_state = on_state
        self._max_packet_size = max_packet_size
        self._handshake_timeout = handshake_timeout
        self._max_backoff = max_backoff
        self._conn: TcpConnection | None = None
        self._patience = Patience(log)  # quiet while the node may still be starting

    @property
    def ready(self) -> bool:
        """True while the link is connected and the handshake succeeded."""
        return self._conn is not None and not self._conn.is_closed

    def send(self, packet: bytes) -> bool:
        """Queue an encoded packet to the logic node; False when the link is down."""
        conn = self._conn
        return conn is not None and conn.send(packet)

    async def run(self) -> None:
        """Keep the link up until cancelled."""
        backoff = 0.05
        while True:
            try:
                conn = await self._connect()
            except (OSError, ConnectionClosed, ProtocolError, TimeoutError) as exc:
                self._patience.failed("logic node %s unreachable: %s", self.address, exc)
            except HandshakeRefused as exc:
                log.error("logic node %s refused the handshake: %s", self.address, exc)
            else:
                backoff = 0.05
                self._conn = conn
                self._patience.succeeded()
                log.info("linked to logic node %s at %s", self.node_id, self.address)
                self._on_state(self)
                try:
                    await self._pump(conn)
                finally:
                    self._conn = None
                    conn.close()
                    self._on_state(self)
                log.warning("link to logic node %s lost", self.address)
            await anyio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._max_backoff)

    async def _connect(self) -> TcpConnection:
        with anyio.fail_after(self._handshake_timeout):
            conn = await connect_tcp(
                self.host,
                self.port,
                max_packet_size=LINK_MAX_PACKET_SIZE,
                max_send_buffer=LINK_SEND_BUFFER,
            )
            try:
                hello = LogicPacket.request(
                    HANDSHAKE_COMMAND,
                    meta=(Meta(META_SECRET, self._secret), Meta(META_GATEWAY, self._gateway_id)),
                )
                conn.send(hello.encode())
                answer = decode_packet((await conn.receive())[0], max_size=LINK_MAX_PACKET_SIZE)
            except BaseException:
                conn.close()
                raise
        if not isinstance(answer, LogicPacket) or answer.status != Status.SUCCESS:
            conn.close()
            raise HandshakeRefused(f"status {getattr(answer, 'status', '?')}")
        self.node_id = answer.meta_value(META_NODE) or self.address
        self.services = _announced_services(answer.meta_value(META_SERVICES))
        return conn

    async def _pump(self, conn: TcpConnection) -> None:
        """Handle the logic node's packets in the transport's callback until the link
        closes (no task wake-up per read)."""
        conn.set_receiver(self._handle_batch)
        await conn.wait_closed()

    def _handle_batch(self, batch: list[bytes]) -> None:
        for raw in batch:
            try:
                packet = decode_packet(raw, max_size=LINK_MAX_PACKET_SIZE)
            except ProtocolError as exc:
                log.error("bad packet from logic node %s: %s", self.address, exc)
                continue
            if isinstance(packet, LogicPacket):
                self._on_packet(self, packet, raw)
