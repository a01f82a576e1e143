"""A connection's close callback and ``wait_closed``, over real loopback sockets: the
callback runs once, after the close (never inside it), also when registered late, and
an error in it is logged; an idle connection keeps no list or event it does not use, and
a closed one is freed by reference counting even when its owner refers back to it."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator

import anyio
import pytest

from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.tcp import TcpConnection, connect_tcp, serve_tcp
from data_plane.transport.ws import WsConnection, connect_ws, serve_ws
from tests.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tcp_pair() -> AsyncIterator[tuple[TcpConnection, TcpConnection]]:
    accepted: list[PacketConnection] = []
    server = await serve_tcp("127.0.0.1", 0, accepted.append)
    client = await connect_tcp("127.0.0.1", server.sockets[0].getsockname()[1])
    await until(lambda: bool(accepted))
    conn = accepted[0]
    assert isinstance(conn, TcpConnection)
    yield conn, client
    conn.close()
    client.close()
    server.close()


async def test_runs_once_after_the_close_not_inside_it(
    tcp_pair: tuple[TcpConnection, TcpConnection],
) -> None:
    conn, client = tcp_pair
    calls: list[bool] = []
    conn.call_when_closed(lambda: calls.append(conn.is_closed))
    conn.close(CloseCode.GOING_AWAY, "bye")
    assert calls == []  # not from inside close()
    await until(lambda: bool(calls))
    conn.close()
    await asyncio.sleep(0.05)
    assert calls == [True]
    with anyio.fail_after(5):
        await client.wait_closed()


async def test_runs_when_the_peer_closes_and_when_registered_late(
    tcp_pair: tuple[TcpConnection, TcpConnection],
) -> None:
    conn, client = tcp_pair
    calls: list[str] = []
    conn.call_when_closed(lambda: calls.append("early"))
    client.close(CloseCode.NORMAL, "done")
    await until(lambda: calls == ["early"])
    assert conn.close_reason is not None and conn.close_reason.by_peer
    conn.call_when_closed(lambda: calls.append("late"))  # already closed: runs soon
    await until(lambda: calls == ["early", "late"])
    with anyio.fail_after(1):
        await conn.wait_closed()  # returns at once


async def test_an_error_in_it_is_logged(
    tcp_pair: tuple[TcpConnection, TcpConnection], caplog: pytest.LogCaptureFixture
) -> None:
    conn, _ = tcp_pair

    def fail() -> None:
        raise RuntimeError("boom")

    conn.call_when_closed(fail)
    with caplog.at_level(logging.ERROR, logger="data_plane.transport.connection"):
        conn.close()
        await until(lambda: "close callback failed" in caplog.text)


async def test_wait_closed_wakes_every_waiter(
    tcp_pair: tuple[TcpConnection, TcpConnection],
) -> None:
    conn, _ = tcp_pair
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await conn.wait_closed()
        woken.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(waiter, n)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        conn.close()
    assert sorted(woken) == [0, 1, 2]


async def test_an_idle_ws_connection_holds_no_unused_buffers() -> None:
    accepted: list[PacketConnection] = []
    server = await serve_ws("127.0.0.1", 0, accepted.append)
    client = await connect_ws(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
    await until(lambda: bool(accepted))
    conn = accepted[0]
    assert isinstance(conn, WsConnection)
    assert not hasattr(conn, "__dict__")  # slots only
    assert (conn._inbox, conn._outbox, conn._fragments, conn._closed_event) == (
        None,
        None,
        None,
        None,
    )
    ws = conn.ws_transport
    assert ws is not None and ws.request is not None and len(ws.request.headers) == 0
    got: list[list[bytes]] = []
    conn.set_receiver(got.append)
    client.send(b"hello")
    await until(lambda: got == [[b"hello"]])
    assert conn.send(b"back")
    assert await client.receive() == [b"back"]
    assert conn._inbox is None and conn._outbox is None  # taken whole, not kept
    client.close()
    await until(lambda: conn.is_closed)
    server.close()


class _Owner:
    """Owner state that refers back to its connection, as the gateway's channel does."""

    def __init__(self, conn: PacketConnection) -> None:
        self.conn = conn

    def __call__(self, batch: list[bytes]) -> None:
        pass


def _own(conn: PacketConnection) -> None:
    conn.set_receiver(_Owner(conn))
    conn.call_when_closed(lambda: None)


async def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    accepted: list[PacketConnection] = []
    server = await serve_ws("127.0.0.1", 0, accepted.append)
    client = await connect_ws(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
    await until(lambda: bool(accepted))
    conn = accepted.pop()
    _own(conn)
    gone = weakref.ref(conn)
    del conn
    gc.disable()
    try:
        client.close()
        await until(lambda: gone() is None)  # the receiver let go of at the close
    finally:
        gc.enable()
    server.close()
