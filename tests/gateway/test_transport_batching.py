"""Packets queued in one loop iteration leave in one write, over real loopback sockets
(the idle timeout that used to be tested here: tests/gateway/test_idle.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from data_plane.transport import ws as ws_module
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.tcp import TcpConnection, connect_tcp, serve_tcp
from data_plane.transport.ws import WsConnection, connect_ws, encode_server_frames, serve_ws
from tests.waiting import until

pytestmark = pytest.mark.anyio

BIG = 1 << 20
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000, 3]


def _payloads() -> list[bytes]:
    return [bytes([i % 251]) * size for i, size in enumerate(SIZES)]


async def _receive_n(conn: PacketConnection, n: int) -> list[bytes]:
    got: list[bytes] = []
    with anyio.fail_after(5):
        while len(got) < n:
            got.extend(await conn.receive())
    return got


class _Accepted:
    """The server side of the one connection a test makes."""

    def __init__(self) -> None:
        self.conn: PacketConnection | None = None
        self.ready = asyncio.Event()

    def __call__(self, conn: PacketConnection) -> None:
        self.conn = conn
        self.ready.set()

    async def get(self) -> PacketConnection:
        with anyio.fail_after(5):
            await self.ready.wait()
        assert self.conn is not None
        return self.conn


@pytest.fixture
async def ws_pair() -> AsyncIterator[tuple[WsConnection, WsConnection]]:
    accepted = _Accepted()
    server = await serve_ws("127.0.0.1", 0, accepted, max_packet_size=BIG, max_send_buffer=BIG * 8)
    port = server.sockets[0].getsockname()[1]
    client = await connect_ws(f"ws://127.0.0.1:{port}/", max_packet_size=BIG)
    conn = await accepted.get()
    assert isinstance(conn, WsConnection)
    yield conn, client
    client.close()
    conn.close()
    server.close()


def test_server_frames_match_rfc6455_lengths() -> None:
    assert encode_server_frames([b""]) == b"\x82\x00"
    assert encode_server_frames([b"ab", b"c"]) == b"\x82\x02ab\x82\x01c"
    assert encode_server_frames([b"x" * 125])[:2] == b"\x82\x7d"
    assert encode_server_frames([b"x" * 126])[:4] == b"\x82\x7e\x00\x7e"
    assert encode_server_frames([b"x" * 65536])[:10] == b"\x82\x7f" + (65536).to_bytes(8, "big")


async def test_ws_server_batch_is_one_write_and_arrives_whole_in_order(
    ws_pair: tuple[WsConnection, WsConnection], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = ws_pair
    calls: list[int] = []
    real: Callable[[list[bytes]], bytes] = ws_module.encode_server_frames

    def counting(payloads: list[bytes]) -> bytes:
        calls.append(len(payloads))
        return real(payloads)

    monkeypatch.setattr(ws_module, "encode_server_frames", counting)
    payloads = _payloads()
    for payload in payloads:
        assert server.send(payload)
    assert await _receive_n(client, len(payloads)) == payloads
    assert calls == [len(payloads)]


async def test_ws_single_packet_and_client_side_go_through_picows(
    ws_pair: tuple[WsConnection, WsConnection], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = ws_pair
    calls: list[int] = []

    def refuse(payloads: list[bytes]) -> bytes:
        calls.append(len(payloads))
        raise AssertionError("not batched")

    monkeypatch.setattr(ws_module, "encode_server_frames", refuse)
    assert server.send(b"one")
    assert await _receive_n(client, 1) == [b"one"]
    payloads = _payloads()
    for payload in payloads:  # the client masks every frame: picows does it per packet
        assert client.send(payload)
    assert await _receive_n(server, len(payloads)) == payloads
    assert calls == []


async def test_ws_batch_after_close_is_not_written(
    ws_pair: tuple[WsConnection, WsConnection],
) -> None:
    server, client = ws_pair
    assert server.send(b"a") and server.send(b"b")
    server.close(CloseCode.SLOW_CONSUMER, "too slow")  # flushes first, then the close
    assert not server.send(b"c")
    assert await _receive_n(client, 2) == [b"a", b"b"]
    with anyio.fail_after(5):
        await client.wait_closed()
    assert client.close_reason is not None
    assert (client.close_reason.code, client.close_reason.reason) == (4003, "too slow")


async def test_ws_send_buffer_bound_still_applies_to_batches(
    ws_pair: tuple[WsConnection, WsConnection],
) -> None:
    server, _ = ws_pair
    server._max_send_buffer = 1000  # the fixture built it with a large bound
    assert server.send(b"x" * 600)
    assert not server.send(b"x" * 600)  # 1,200 queued bytes would exceed it


async def test_tcp_batch_arrives_whole_in_order() -> None:
    accepted = _Accepted()
    server = await serve_tcp("127.0.0.1", 0, accepted, max_packet_size=BIG)
    port = server.sockets[0].getsockname()[1]
    client = await connect_tcp("127.0.0.1", port, max_packet_size=BIG)
    conn = await accepted.get()
    payloads = _payloads()
    for payload in payloads:
        assert conn.send(payload)
    assert await _receive_n(client, len(payloads)) == payloads
    client.close()
    conn.close()
    server.close()


async def _tcp_pair() -> tuple[asyncio.Server, TcpConnection, TcpConnection]:
    accepted = _Accepted()
    server = await serve_tcp("127.0.0.1", 0, accepted)
    port = server.sockets[0].getsockname()[1]
    client = await connect_tcp("127.0.0.1", port)
    conn = await accepted.get()
    assert isinstance(conn, TcpConnection)
    return server, conn, client


async def test_receiver_gets_queued_then_new_packets_in_order() -> None:
    server, conn, client = await _tcp_pair()
    for i in range(5):
        client.send(b"early%d" % i)
    await until(lambda: len(conn._inbox or ()) == 5)
    got: list[list[bytes]] = []
    conn.set_receiver(got.append)
    assert got == [[b"early%d" % i for i in range(5)]]  # handed over at once
    for i in range(300):
        client.send(b"late%d" % i)
    await until(lambda: sum(map(len, got)) == 305)
    flat = [packet for batch in got for packet in batch]
    assert flat == [b"early%d" % i for i in range(5)] + [b"late%d" % i for i in range(300)]
    assert len(got) < 300  # whole reads at once, not one call per packet
    client.close(CloseCode.NORMAL, "bye")
    with anyio.fail_after(5):
        await conn.wait_closed()
    assert conn.close_reason is not None and conn.close_reason.by_peer
    server.close()


async def test_receiver_resumes_paused_reading() -> None:
    accepted = _Accepted()
    server = await serve_tcp("127.0.0.1", 0, accepted)
    port = server.sockets[0].getsockname()[1]
    client = await connect_tcp("127.0.0.1", port)
    conn = await accepted.get()
    conn._max_inbox = 4  # the serve_tcp default is 1,024
    for i in range(50):
        client.send(b"%d" % i)
    await until(lambda: conn.reading_paused)
    got: list[bytes] = []
    conn.set_receiver(got.extend)
    await until(lambda: len(got) == 50)
    assert got == [b"%d" % i for i in range(50)]
    client.close()
    conn.close()
    server.close()


async def test_receiver_error_closes_only_that_connection_with_1011() -> None:
    server, conn, client = await _tcp_pair()
    other_server, other, other_client = await _tcp_pair()
    calls: list[list[bytes]] = []

    def broken(batch: list[bytes]) -> None:
        calls.append(batch)
        raise RuntimeError("handler bug")

    conn.set_receiver(broken)
    client.send(b"boom")
    with anyio.fail_after(5):
        await client.wait_closed()
    assert client.close_reason is not None
    assert (client.close_reason.code, client.close_reason.reason) == (1011, "internal error")
    assert calls == [[b"boom"]]
    other_got: list[bytes] = []
    other.set_receiver(other_got.extend)
    other_client.send(b"fine")
    await until(lambda: other_got == [b"fine"])
    other_client.close()
    other.close()
    other_server.close()
    server.close()


async def test_ws_receiver_gets_every_message_in_order(
    ws_pair: tuple[WsConnection, WsConnection],
) -> None:
    server, client = ws_pair
    got: list[bytes] = []
    server.set_receiver(got.extend)
    payloads = _payloads()
    for payload in payloads:
        client.send(payload)
    await until(lambda: len(got) == len(payloads))
    assert got == payloads
