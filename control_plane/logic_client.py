"""The control plane's link to a logic node, for the tenants' server API.

Theory of operation. The server-API routes (``control_plane.routes.server_api``) cannot
run the data plane's handlers themselves (the control plane never imports the logic
package), so each call becomes one ``server.*`` request on a TCP link to a live logic
node, the link gateways use, opened with a ``cluster.handshake`` that carries the
cluster secret and ``role`` = ``control`` (:mod:`data_plane.cluster.server_api`).

One :class:`LogicClient` per control-plane process (``app.state.logic_client``) keeps
one link at a time, to a node of the list the route read from the node registry: the
current link while its node is still listed, else the first listed node that accepts a
handshake (in random order, so control-plane processes spread over the nodes).
Requests are multiplexed on the link by sequence number; answers are matched in the
transport's receive callback. When the link closes, every call waiting on it fails at
once and the next call dials again.

Guarantees and bounds:

- every call ends within ``timeout`` seconds (dial and handshake included) with the
  node's answer or :class:`LogicUnavailable` (the route answers 503): no node listed,
  none reachable, the link lost, or no answer in time. A call that timed out may still
  have taken effect on the node (a send: repeat it with the same ``client_msg_id``);
- at most ``max_in_flight`` calls wait at once; one more is refused at once with
  :class:`LogicUnavailable` (503), so a flood cannot pile up threads or link buffers;
- answers larger than the link's packet limit close the link (the transport's rule).

The routes are synchronous (FastAPI's thread pool); they call :meth:`LogicClient.call`
through ``anyio.from_thread.run``, so the link lives on the app's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from data_plane.cluster import server_api
from data_plane.cluster.protocol import (
    HANDSHAKE_COMMAND,
    LINK_MAX_PACKET_SIZE,
    META_ACCOUNT,
    META_GATEWAY,
    META_SECRET,
    META_TENANT,
)
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import TcpConnection, connect_tcp
from data_plane.wire import (
    LogicPacket,
    MalformedPacket,
    Meta,
    ProtocolError,
    Status,
    decode_packet,
    pb,
)

log = logging.getLogger(__name__)

LINK_SEND_BUFFER = 8 * 1024 * 1024


class LogicUnavailable(Exception):
    """No logic node answered the call (the route answers 503 with this reason)."""


@dataclass(frozen=True, slots=True)
class LogicAnswer:
    """A logic node's answer: its wire status, the JSON body of a success, the reason of
    a refusal."""

    status: int
    body: dict[str, Any]
    reason: str


class LogicClient:
    """Sends ``server.*`` requests to a logic node (see the module doc)."""

    def __init__(
        self, *, client_id: str, cluster_secret: str, timeout: float, max_in_flight: int
    ) -> None:
        self._id = client_id
        self._secret = cluster_secret
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._conn: TcpConnection | None = None
        self._address = ""
        self._sequence = 0
        self._waiting: dict[int, tuple[TcpConnection, asyncio.Future[LogicPacket]]] = {}
        """Calls waiting for an answer, by sequence, with the link they were sent on."""
        self._dialing: asyncio.Lock | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def call(
        self,
        addresses: Sequence[str],
        command: str,
        tenant: str,
        account: str,
        body: dict[str, Any],
    ) -> LogicAnswer:
        """Send one request to a node of ``addresses`` (``host:port`` link addresses)
        and return its answer; raises :class:`LogicUnavailable` (see the module doc)."""
        if self._in_flight >= self._max_in_flight:
            raise LogicUnavailable(
                f"{self._max_in_flight} server-API calls are already in flight: retry"
            )
        self._in_flight += 1
        try:
            with anyio.fail_after(self._timeout):
                conn = await self._link(addresses)
                return await self._exchange(conn, command, tenant, account, body)
        except TimeoutError:
            raise LogicUnavailable(
                f"no logic node answered within {self._timeout:g} s: retry"
            ) from None
        finally:
            self._in_flight -= 1

    async def _exchange(
        self, conn: TcpConnection, command: str, tenant: str, account: str, body: dict[str, Any]
    ) -> LogicAnswer:
        self._sequence = sequence = self._sequence % (2**31 - 1) + 1
        request = LogicPacket.request(
            command,
            server_api.encode(body),
            sequence=sequence,
            meta=(Meta(META_TENANT, tenant), Meta(META_ACCOUNT, account)),
        )
        future: asyncio.Future[LogicPacket] = asyncio.get_running_loop().create_future()
        self._waiting[sequence] = (conn, future)
        try:
            if not conn.send(request.encode()):
                raise LogicUnavailable("the link to the logic node is down or full: retry")
            answer = await future
        finally:
            self._waiting.pop(sequence, None)
        if answer.status != Status.SUCCESS:
            try:
                reason = answer.parse_body(pb.ErrorResp).message
            except MalformedPacket:
                reason = ""
            return LogicAnswer(answer.status, {}, reason or f"refused with {answer.status}")
        try:
            return LogicAnswer(answer.status, server_api.decode(answer.body), "")
        except server_api.BadBody as exc:
            raise LogicUnavailable(f"the logic node's answer is unreadable: {exc}") from exc

    async def _link(self, addresses: Sequence[str]) -> TcpConnection:
        """The open link, or a new one to a listed node."""
        conn = self._conn
        if conn is not None and not conn.is_closed and self._address in addresses:
            return conn
        if self._dialing is None:
            self._dialing = asyncio.Lock()
        async with self._dialing:
            conn = self._conn
            if conn is not None and not conn.is_closed and self._address in addresses:
                return conn
            self._drop()
            if not addresses:
                raise LogicUnavailable("no logic node is registered as live")
            failures: list[str] = []
            for address in random.sample(list(addresses), len(addresses)):
                try:
                    conn = await self._dial(address)
                except (OSError, ConnectionClosed, ProtocolError, LogicUnavailable) as exc:
                    failures.append(f"{address}: {exc}")
                    continue
                self._conn, self._address = conn, address
                self._watcher = asyncio.get_running_loop().create_task(self._watch(conn))
                log.info("server API linked to logic node %s", address)
                return conn
            raise LogicUnavailable("no logic node is reachable (" + "; ".join(failures) + ")")

    async def _dial(self, address: str) -> TcpConnection:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise LogicUnavailable(f"{address!r} is not a host:port address")
        conn = await connect_tcp(
            host.strip("[]"),
            int(port),
            max_packet_size=LINK_MAX_PACKET_SIZE,
            max_send_buffer=LINK_SEND_BUFFER,
        )
        try:
            hello = LogicPacket.request(
                HANDSHAKE_COMMAND,
                meta=(
                    Meta(META_SECRET, self._secret),
                    Meta(META_GATEWAY, self._id),
                    Meta(server_api.META_ROLE, server_api.ROLE_CONTROL),
                ),
            )
            conn.send(hello.encode())
            answer = decode_packet((await conn.receive())[0], max_size=LINK_MAX_PACKET_SIZE)
            if not isinstance(answer, LogicPacket) or answer.status != Status.SUCCESS:
                raise LogicUnavailable("the logic node refused the handshake (cluster secret?)")
        except BaseException:
            conn.close()
            raise
        conn.set_receiver(self._on_batch)
        return conn

    def _on_batch(self, batch: list[bytes]) -> None:
        """Hand each answer to the call waiting for its sequence (transport callback)."""
        for raw in batch:
            try:
                packet = decode_packet(raw, max_size=LINK_MAX_PACKET_SIZE)
            except ProtocolError as exc:
                log.error("bad packet from logic node %s: %s", self._address, exc)
                continue
            if not isinstance(packet, LogicPacket):
                continue
            waiting = self._waiting.get(packet.sequence)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_result(packet)

    async def _watch(self, conn: TcpConnection) -> None:
        """Fail the calls waiting on ``conn`` as soon as it closes."""
        await conn.wait_closed()
        if self._conn is conn:
            self._conn = None
        log.warning("server API link to logic node %s closed", self._address)
        for sent_on, future in list(self._waiting.values()):
            if sent_on is conn and not future.done():
                future.set_exception(LogicUnavailable("the link to the logic node was lost"))

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        """Close the link (the app's shutdown)."""
        self._drop()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
