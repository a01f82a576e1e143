"""The gateway's idle timeout (:class:`IdleSweeper`) on a fake clock the test advances:
a channel is closed no earlier than ``idle`` seconds after its connection's last frame
and at most a tick later, activity keeps it open, forgetting it leaves no timer, and
channels due in the same tick share one timer. The first tests run over real loopback
sockets (the peer sees the close); the count of timers uses connections without a
socket, since only their clock stamps matter there."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from data_plane.gateway.channel import Channel
from data_plane.gateway.idle import IDLE_TICK, IdleSweeper
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import TcpConnection, connect_tcp, serve_tcp
from tests.capture import Capture
from tests.gateway.fake_clock import FakeClock
from tests.waiting import until

pytestmark = pytest.mark.anyio


def _channel(conn: PacketConnection, n: int = 0) -> Channel:
    return Channel(id=f"gw_a_{n}", conn=conn, tenant="t", account="a", device="d")


async def _pair(clock: FakeClock) -> tuple[asyncio.Server, TcpConnection, TcpConnection]:
    """A loopback TCP connection whose server side is stamped by ``clock``."""
    accepted: list[PacketConnection] = []
    server = await serve_tcp("127.0.0.1", 0, accepted.append, clock=clock.now)
    client = await connect_tcp("127.0.0.1", server.sockets[0].getsockname()[1])
    await until(lambda: bool(accepted))
    conn = accepted[0]
    assert isinstance(conn, TcpConnection)
    return server, conn, client


async def test_closes_only_after_silence_and_within_a_tick() -> None:
    clock = FakeClock()
    await clock.advance(0.25)  # deadlines fall between ticks from here on
    server, conn, client = await _pair(clock)
    sweeper = IdleSweeper(3.0, clock)
    channel = _channel(conn)
    sweeper.watch(channel)
    for _ in range(6):  # activity every 1 s for 6 s: twice the idle time
        await clock.advance(1.0)
        assert not conn.is_closed
        client.ping()
        await until(lambda: conn.last_activity == clock.now())  # the ping arrived
    await clock.advance(2.999)  # 3 s after the last ping, not yet
    assert not conn.is_closed
    await clock.advance(0.001)  # the deadline, between two ticks: still open
    assert not conn.is_closed
    await clock.advance(IDLE_TICK - 0.001)  # the next tick
    assert conn.close_reason is not None
    assert (conn.close_reason.code, conn.close_reason.reason) == (
        CloseCode.IDLE_TIMEOUT,
        "idle timeout",
    )
    with pytest.raises(ConnectionClosed):
        await conn.receive()
    with anyio.fail_after(5):
        await client.wait_closed()
    assert client.close_reason is not None and client.close_reason.code == CloseCode.IDLE_TIMEOUT
    assert channel.idle is None and sweeper.timers == 0 and clock.pending() == 0
    server.close()


async def test_forget_stops_it_and_leaves_no_timer() -> None:
    clock = FakeClock()
    server, conn, client = await _pair(clock)
    sweeper = IdleSweeper(1.0, clock)
    channel = _channel(conn)
    sweeper.watch(channel)
    assert clock.pending() == 1
    sweeper.forget(channel)
    sweeper.forget(channel)  # idempotent
    assert clock.pending() == 0 and sweeper.timers == 0
    await clock.advance(3.0)
    assert not conn.is_closed
    client.close()
    conn.close()
    server.close()


async def test_channels_due_in_one_tick_share_a_timer() -> None:
    clock = FakeClock()
    sweeper = IdleSweeper(10.0, clock)
    await clock.advance(0.005)  # no deadline on a tick
    channels = []
    for n in range(300):  # 300 channels over 3 s: three ticks of deadlines
        channel = _channel(Capture(clock=clock.now), n)
        sweeper.watch(channel)
        channels.append(channel)
        await clock.advance(0.01)
    assert sweeper.timers == clock.pending() == 3
    channels[0].conn.last_activity = clock.now()  # heard from again
    await clock.advance(10.0)  # past every first deadline
    closed = [c for c in channels if c.conn.is_closed]
    assert len(closed) == 299 and not channels[0].conn.is_closed
    for channel in closed:
        sweeper.forget(channel)  # what a channel's end does
    assert sweeper.timers == clock.pending() == 1  # the one filed again
    await clock.advance(1.0)
    reason = channels[0].conn.close_reason
    assert reason is not None and reason.code == CloseCode.IDLE_TIMEOUT
    assert sweeper.timers == clock.pending() == 0
