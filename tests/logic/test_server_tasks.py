"""The logic server's request tasks, over a real TCP gateway link: arrival order, one
failing request not disturbing the others, and every task ended before ``run`` returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest

from data_plane.cluster.protocol import (
    HANDSHAKE_COMMAND,
    META_ACCOUNT,
    META_GATEWAY,
    META_SECRET,
    META_TENANT,
)
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.router import Handler, Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.transport.tcp import TcpConnection, connect_tcp
from data_plane.wire import LogicPacket, Meta, Status, decode_packet

pytestmark = pytest.mark.anyio

SECRET = "a-cluster-secret"


@asynccontextmanager
async def linked(handlers: dict[str, Handler]) -> AsyncIterator[tuple[TcpConnection, LogicServer]]:
    """A logic server on a free port with ``handlers``, and a gateway link to it."""
    settings = LogicSettings(cluster_secret=SECRET, port=0, id_node=1)
    server = LogicServer(settings, Router(handlers), GatewayHub())
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        conn = await connect_tcp("127.0.0.1", server.port)
        hello = LogicPacket.request(
            HANDSHAKE_COMMAND, meta=[Meta(META_SECRET, SECRET), Meta(META_GATEWAY, "gw")]
        )
        conn.send(hello.encode())
        welcome = decode_packet((await conn.receive())[0])
        assert isinstance(welcome, LogicPacket) and welcome.status == Status.SUCCESS
        try:
            yield conn, server
        finally:
            conn.close(1000, "")
            tg.cancel_scope.cancel()


def talk(command: str, sequence: int) -> bytes:
    meta = [Meta(META_TENANT, "t"), Meta(META_ACCOUNT, "a"), Meta(META_GATEWAY, "gw")]
    return LogicPacket.request(command, sequence=sequence, channel_id="ch", meta=meta).encode()


async def responses(conn: TcpConnection, count: int) -> list[LogicPacket]:
    got: list[LogicPacket] = []
    with anyio.fail_after(10):
        while len(got) < count:
            for raw in await conn.receive():
                packet = decode_packet(raw)
                assert isinstance(packet, LogicPacket)
                got.append(packet)
    return got


async def test_requests_start_in_arrival_order_and_a_failure_stays_local() -> None:
    started: list[int] = []

    async def record(request: Request) -> None:
        started.append(request.packet.sequence)
        if request.packet.sequence % 10 == 3:
            raise RuntimeError("this one request fails")
        await anyio.lowlevel.checkpoint()
        request.reply()

    async with linked({"t.record": record}) as (conn, _):
        for seq in range(1, 201):  # sent in one go: they arrive as one batch or a few
            conn.send(talk("t.record", seq))
        answers = await responses(conn, 200)
    assert started == list(range(1, 201))
    statuses = {packet.sequence: packet.status for packet in answers}
    assert statuses == {
        seq: Status.SYSTEM_EXCEPTION if seq % 10 == 3 else Status.SUCCESS for seq in range(1, 201)
    }


async def test_running_requests_are_cancelled_and_awaited_before_run_returns() -> None:
    entered = 0
    ended = 0
    all_in = asyncio.Event()

    async def hang(request: Request) -> None:
        nonlocal entered, ended
        entered += 1
        if entered == 50:
            all_in.set()
        try:
            await anyio.sleep_forever()
        finally:
            ended += 1

    async with linked({"t.hang": hang}) as (conn, server):
        for seq in range(1, 51):
            conn.send(talk("t.hang", seq))
        with anyio.fail_after(10):
            await all_in.wait()
        assert len(server._requests) == 50
    # The task group above has exited, so ``run`` has returned.
    assert (entered, ended) == (50, 50)
    assert not server._requests
