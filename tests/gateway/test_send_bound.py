"""Every write within the send bound, over real loopback sockets: pongs to a peer that
does not read (TCP or WebSocket) close it (4003) instead of growing memory, a server
stops reading such a peer while its writes are blocked and reads again once it catches
up, and the tiny pre-login packet limit is raised by ``set_limits``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.tcp import connect_tcp, serve_tcp
from data_plane.transport.ws import serve_ws
from data_plane.wire import Opcode, encode_frame
from tests.waiting import until

pytestmark = pytest.mark.anyio

PING = encode_frame(Opcode.PING, b"p" * 8192)
PONG_SIZE = len(PING)


def _paused(conn: PacketConnection) -> bool:
    return conn.reading_paused  # read through a call: mypy would narrow the property


class Listener:
    """A TCP listener and the server side of the connections made to it."""

    def __init__(self) -> None:
        self.accepted: list[PacketConnection] = []
        self.server: asyncio.Server | None = None

    async def start(self, *, max_packet_size: int = 65536, max_send_buffer: int = 1 << 22) -> int:
        self.server = await serve_tcp(
            "127.0.0.1",
            0,
            self.accepted.append,
            max_packet_size=max_packet_size,
            max_send_buffer=max_send_buffer,
        )
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def one(self) -> PacketConnection:
        await until(lambda: bool(self.accepted))
        return self.accepted[0]


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    listening = Listener()
    yield listening
    for conn in listening.accepted:
        conn.close()
    if listening.server is not None:
        listening.server.close()


async def _deaf_peer(port: int) -> socket.socket:
    """A raw socket that sends and never reads (a tiny receive buffer, so the server's
    answers back up quickly)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def _send_pings(sock: socket.socket, stop: Callable[[], bool], limit: int) -> int:
    """Send ping frames until ``stop()`` or ``limit`` bytes; returns the bytes sent. A
    send that cannot proceed (the server stopped reading) ends the flood too."""
    loop = asyncio.get_running_loop()
    sent = 0
    while sent < limit and not stop():
        with anyio.move_on_after(0.5) as scope:
            await loop.sock_sendall(sock, PING * 16)
        if scope.cancelled_caught:
            break
        sent += len(PING) * 16
    return sent


async def test_pongs_to_a_peer_that_does_not_read_close_it_at_the_bound(
    listener: Listener,
) -> None:
    bound = 64 * 1024
    port = await listener.start(max_send_buffer=bound)
    sock = await _deaf_peer(port)
    try:
        conn = await listener.one()
        # Without the bound this would queue every pong: 32 MiB of them.
        await _send_pings(sock, lambda: conn.is_closed, 32 * 1024 * 1024)
        await until(lambda: conn.is_closed)
        assert conn.close_reason is not None
        assert conn.close_reason.code == CloseCode.SLOW_CONSUMER
        assert "does not read" in conn.close_reason.reason
    finally:
        sock.close()


async def test_a_server_stops_reading_a_peer_that_does_not_read_and_resumes(
    listener: Listener,
) -> None:
    port = await listener.start(max_send_buffer=8 * 1024 * 1024)
    sock = await _deaf_peer(port)
    try:
        conn = await listener.one()
        await _send_pings(sock, lambda: conn.reading_paused, 16 * 1024 * 1024)
        await until(lambda: conn.reading_paused)
        assert not conn.is_closed  # within its bound: paused, not closed
        # The peer catches up: the server reads it again.
        loop = asyncio.get_running_loop()
        received = 0
        with anyio.fail_after(10):
            while conn.reading_paused:
                received += len(await loop.sock_recv(sock, 1 << 20))
        assert received > 0
        assert not conn.is_closed
    finally:
        sock.close()


async def test_owner_hold_and_blocked_writes_are_separate_reasons(listener: Listener) -> None:
    port = await listener.start()
    client = await connect_tcp("127.0.0.1", port)
    try:
        conn = await listener.one()
        conn.hold_reading(True)
        assert _paused(conn)
        conn.hold_reading(False)
        assert not _paused(conn)
        client.send(b"still read")
        with anyio.fail_after(5):
            assert await conn.receive() == [b"still read"]
    finally:
        client.close()


async def test_the_small_first_limit_is_raised_by_set_limits(listener: Listener) -> None:
    port = await listener.start(max_packet_size=1024, max_send_buffer=4096)
    first = await connect_tcp("127.0.0.1", port)
    second = await connect_tcp("127.0.0.1", port)
    try:
        await until(lambda: len(listener.accepted) == 2)
        small, raised = listener.accepted
        raised.set_limits(max_packet_size=64 * 1024, max_send_buffer=1 << 20)
        assert raised.max_send_buffer == 1 << 20
        first.send(b"x" * 2000)
        await until(lambda: small.is_closed)
        assert small.close_reason is not None
        assert small.close_reason.code == CloseCode.TOO_BIG
        second.send(b"y" * 2000)
        with anyio.fail_after(5):
            assert await raised.receive() == [b"y" * 2000]
    finally:
        first.close()
        second.close()


def _masked_ping(payload: bytes) -> bytes:
    """A client-to-server WebSocket ping frame (RFC 6455 §5.2, masked, FIN)."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + masked


async def test_ws_pongs_to_a_peer_that_does_not_read_close_it_at_the_bound() -> None:
    accepted: list[PacketConnection] = []
    server = await serve_ws("127.0.0.1", 0, accepted.append, max_send_buffer=16 * 1024)
    port = server.sockets[0].getsockname()[1]
    sock = await _deaf_peer(port)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(
            sock,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        await until(lambda: bool(accepted))
        conn = accepted[0]
        burst = _masked_ping(b"p" * 125) * 2000
        await _send_pings_raw(sock, burst, lambda: conn.is_closed, 32 * 1024 * 1024)
        await until(lambda: conn.is_closed)
        assert conn.close_reason is not None
        assert conn.close_reason.code == CloseCode.SLOW_CONSUMER
    finally:
        sock.close()
        server.close()


async def _send_pings_raw(
    sock: socket.socket, burst: bytes, stop: Callable[[], bool], limit: int
) -> None:
    loop = asyncio.get_running_loop()
    sent = 0
    while sent < limit and not stop():
        with anyio.move_on_after(0.5) as scope:
            await loop.sock_sendall(sock, burst)
        if scope.cancelled_caught:
            return
        sent += len(burst)
