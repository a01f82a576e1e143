"""The logic node's cap on requests running per gateway link, over a real TCP link: past
the cap it stops reading the link (back-pressure) instead of starting more tasks, and
every request is still answered, in arrival order, once the running ones end."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from data_plane.cluster.protocol import HANDSHAKE_COMMAND, META_GATEWAY, META_SECRET
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.router import Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.transport.tcp import connect_tcp
from data_plane.wire import LogicPacket, Meta, Status, decode_packet
from tests.logic.test_server_tasks import responses, talk

pytestmark = pytest.mark.anyio

SECRET = "a-cluster-secret"
CAP = 4
REQUESTS = 40


async def test_requests_past_the_cap_wait_unread_and_all_are_answered() -> None:
    gate = anyio.Event()
    full = anyio.Event()
    started: list[int] = []
    running = 0
    most = 0

    async def blocked(request: Request) -> None:
        nonlocal running, most
        started.append(request.packet.sequence)
        running += 1
        most = max(most, running)
        if running == CAP:
            full.set()
        await gate.wait()
        running -= 1
        request.reply()

    settings = LogicSettings(cluster_secret=SECRET, port=0, id_node=1, max_in_flight_per_link=CAP)
    server = LogicServer(settings, Router({"t.blocked": blocked}), GatewayHub())
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
            for sequence in range(1, REQUESTS + 1):
                conn.send(talk("t.blocked", sequence))
            with anyio.fail_after(5):
                await full.wait()
            for _ in range(200):  # loop turns enough for more to start, were there no cap
                await anyio.lowlevel.checkpoint()
            assert len(started) == CAP and len(server._requests) == CAP
            gate.set()
            answers = await responses(conn, REQUESTS)
            assert [a.sequence for a in answers] == list(range(1, REQUESTS + 1))
            assert all(a.status == Status.SUCCESS for a in answers)
            assert started == list(range(1, REQUESTS + 1))
            assert most <= CAP
        finally:
            conn.close(1000, "")
            tg.cancel_scope.cancel()
