"""The gateway's timers on a fake clock: the login deadline, the wait for a logic node,
the idle timeout (and pings that keep a connection alive) and the location re-assert,
over real loopback sockets.

The gateway's connection handling (:class:`ClientSessions`, its router and admission)
is the production code, built by :class:`Gateway` with a :class:`FakeClock`; the test
advances that clock, so nothing here waits for wall-clock time to pass.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest
from anyio.abc import TaskGroup

from cirno.harness import RawClient, make_token
from data_plane.cluster.protocol import REFRESH_COMMAND
from data_plane.cluster.tenants import TenantDirectory
from data_plane.gateway.channel import Channel
from data_plane.gateway.server import Gateway, reassert_locations
from data_plane.gateway.settings import GatewaySettings
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.tcp import connect_tcp, serve_tcp
from data_plane.wire import BasicCode, Command, LogicPacket, Status, pb
from tests.gateway.fake_clock import FakeClock
from tests.waiting import until

pytestmark = pytest.mark.anyio

LOGIN_TIMEOUT = 10.0
IDLE_TIMEOUT = 180.0
LOGIC_REQUEST_TIMEOUT = 10.0
TENANT = "acme"
SECRET = "acme-secret-0123456789-abcdefghijklmn"
# Nothing listens there: these tests never reach the control plane or a logic node.
UNREACHABLE = "http://127.0.0.1:9"


@dataclass
class Rig:
    """A gateway built on a fake clock, a TCP listener feeding ``on_accept``."""

    clock: FakeClock
    gateway: Gateway
    port: int
    accepted: list[PacketConnection]
    opened: list[PacketConnection]

    async def client(self) -> tuple[RawClient, PacketConnection]:
        """A raw client and the gateway side of its connection."""
        client = RawClient(await connect_tcp("127.0.0.1", self.port))
        await until(lambda: bool(self.accepted))
        conn = self.accepted.pop()
        self.opened += (client.conn, conn)
        return client, conn


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    settings = GatewaySettings(
        cluster_secret="s",
        control_url=UNREACHABLE,
        gateway_id="gw-test",
        login_timeout=LOGIN_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        logic_request_timeout=LOGIC_REQUEST_TIMEOUT,
    )
    directory = TenantDirectory(UNREACHABLE, "s")
    gateway = Gateway(settings, directory, clock=clock)
    accepted: list[PacketConnection] = []
    server = await serve_tcp("127.0.0.1", 0, accepted.append, clock=clock.now)
    rig = Rig(clock, gateway, server.sockets[0].getsockname()[1], accepted, [])
    try:
        yield rig
    finally:
        for conn in rig.opened:
            conn.close()
        server.close()
        await server.wait_closed()
        await directory.aclose()
        await gateway.registry.aclose()


def _channel(conn: PacketConnection, *, logged_in: bool = True) -> Channel:
    channel = Channel(
        id=f"gw-test_alice_{id(conn)}",
        conn=conn,
        tenant="acme",
        account="alice",
        device="phone",
    )
    channel.logged_in = logged_in
    return channel


async def _serve(tg: TaskGroup, rig: Rig, conn: PacketConnection) -> None:
    """Run the gateway's whole connection handling for ``conn``, as its accept does."""
    tg.start_soon(rig.gateway.sessions.serve, conn)
    await until(lambda: rig.clock.pending() > 0)  # the login deadline is armed


async def test_login_deadline_closes_a_silent_connection(rig: Rig) -> None:
    client, conn = await rig.client()
    async with anyio.create_task_group() as tg:
        await _serve(tg, rig, conn)
        await rig.clock.advance(LOGIN_TIMEOUT - 0.001)
        assert not conn.is_closed
        await rig.clock.advance(0.001)
        assert await client.closed() == (
            CloseCode.LOGIN_TIMEOUT,
            "no login within the login timeout",
        )
    assert rig.clock.pending() == 0


async def test_a_first_packet_in_time_is_judged_not_timed_out(rig: Rig) -> None:
    client, conn = await rig.client()
    async with anyio.create_task_group() as tg:
        await _serve(tg, rig, conn)
        await rig.clock.advance(LOGIN_TIMEOUT - 0.001)
        seq = client.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="hi"))
        answer = await client.response(seq)
        assert answer.status == Status.UNAUTHORIZED
        code, reason = await client.closed()
        assert (code, reason) == (CloseCode.UNAUTHORIZED, "login.signin must be the first packet")
    assert rig.clock.pending() == 0  # the deadline was cancelled, not left behind


async def _tenant_list(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The control plane's ``/internal/v1/tenants`` answer for one tenant (one request)."""
    await reader.readuntil(b"\r\n\r\n")
    body = json.dumps(
        {"tenants": [{"id": TENANT, "status": "active", "keys": [{"kid": "k1", "secret": SECRET}]}]}
    ).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()


async def test_login_waits_for_a_logic_node_until_its_deadline(rig: Rig) -> None:
    tenants = await asyncio.start_server(_tenant_list, "127.0.0.1", 0)
    port = tenants.sockets[0].getsockname()[1]
    directory = TenantDirectory(f"http://127.0.0.1:{port}", "s")
    rig.gateway.admission.directory = directory
    try:
        assert await directory.refresh()  # the tenant is known; no logic node is up
        client, conn = await rig.client()
        async with anyio.create_task_group() as tg:
            await _serve(tg, rig, conn)
            token = make_token(TENANT, "alice", SECRET)
            seq = client.request(Command.LOGIN_SIGNIN, pb.LoginReq(token=token))
            # Verified and admitted, the login now waits for the pool on the clock.
            await until(lambda: bool(rig.gateway.channels))
            await rig.clock.advance(LOGIC_REQUEST_TIMEOUT - 0.001)
            assert not conn.is_closed
            await rig.clock.advance(0.001)
            answer = await client.response(seq)
            assert answer.status == Status.SYSTEM_EXCEPTION
            assert answer.parse_body(pb.ErrorResp).message == "no logic node available"
            assert await client.closed() == (CloseCode.TRY_AGAIN_LATER, "no logic node available")
        assert rig.gateway.channels == {}
        assert rig.gateway.quota.admits(TENANT, 1)  # its quota slot was given back
    finally:
        await directory.aclose()
        tenants.close()
        await tenants.wait_closed()


# The fake clock starts on a whole second and the idle timeout is whole seconds, so
# each deadline below falls on a tick of the idle sweeper: the close is exact.
# (A deadline between ticks is closed at the next tick: tests/gateway/test_idle.py.)


async def test_idle_timeout_closes_a_silent_channel(rig: Rig) -> None:
    client, conn = await rig.client()
    channel = _channel(conn)
    rig.gateway.sessions.attach(channel)  # no task: the channel lives on callbacks
    assert rig.clock.pending() == 1  # the idle timeout is armed
    await rig.clock.advance(IDLE_TIMEOUT - 0.001)
    assert not conn.is_closed
    await rig.clock.advance(0.001)
    assert await client.closed() == (CloseCode.IDLE_TIMEOUT, "idle timeout")
    assert conn.close_reason is not None and not conn.close_reason.by_peer
    await until(lambda: not channel.backlog and channel.idle is None)
    assert rig.clock.pending() == 0


async def test_pings_keep_a_channel_alive(rig: Rig) -> None:
    client, conn = await rig.client()
    rig.gateway.sessions.attach(_channel(conn))
    assert rig.clock.pending() == 1
    for _ in range(5):  # 5 × 2/3 of the idle time: well past it in total
        await rig.clock.advance(IDLE_TIMEOUT * 2 / 3)
        assert not conn.is_closed
        pong = await client.ping()
        assert pong.code == BasicCode.PONG
        assert conn.last_activity == rig.clock.now()
    # Requests are activity too, and still handled (no logic node here: refused).
    await rig.clock.advance(IDLE_TIMEOUT - 1)
    seq = client.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="hi"))
    assert (await client.response(seq)).status == Status.SYSTEM_EXCEPTION
    await rig.clock.advance(IDLE_TIMEOUT - 0.001)
    assert not conn.is_closed
    await rig.clock.advance(0.001)
    assert await client.closed() == (CloseCode.IDLE_TIMEOUT, "idle timeout")
    await until(lambda: rig.clock.pending() == 0)  # the end forgot the channel


async def test_reassert_runs_every_interval_for_logged_in_channels(rig: Rig) -> None:
    _, live_conn = await rig.client()
    _, pending_conn = await rig.client()
    live, logging_in = _channel(live_conn), _channel(pending_conn, logged_in=False)
    channels = {live.id: live, logging_in.id: logging_in}
    sent: list[tuple[str, LogicPacket]] = []

    def send(channel: Channel, packet: LogicPacket) -> bool:
        sent.append((channel.id, packet))
        return True

    interval = 30.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(reassert_locations, rig.clock, interval, channels, send)
        await until(lambda: rig.clock.pending() > 0)
        await rig.clock.advance(interval - 0.001)
        assert sent == []
        await rig.clock.advance(0.001)
        assert [(cid, p.command) for cid, p in sent] == [(live.id, REFRESH_COMMAND)]
        logging_in.logged_in = True
        await rig.clock.advance(interval)
        assert [cid for cid, _ in sent] == [live.id, live.id, logging_in.id]
        tg.cancel_scope.cancel()
    assert rig.clock.pending() == 0
