"""Requests in flight per connection and the 429-then-close of a flooding client, over
real loopback sockets, with the gateway on a fake clock.

The logic side is a recorder standing in for the link (these are the session's rules,
not the link's): it keeps what the gateway forwards and the test answers when it likes,
through the router's real entry point for a logic node's packets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest

from cirno.harness import RawClient
from data_plane.cluster.tenants import TenantDirectory, TenantInfo
from data_plane.gateway.channel import Channel
from data_plane.gateway.server import Gateway
from data_plane.gateway.settings import GatewaySettings
from data_plane.transport.connection import CloseCode, PacketConnection
from data_plane.transport.tcp import connect_tcp, serve_tcp
from data_plane.wire import Command, LogicPacket, Status
from tests.gateway.fake_clock import FakeClock
from tests.waiting import until

pytestmark = pytest.mark.anyio

UNREACHABLE = "http://127.0.0.1:9"
TIMEOUT = 10.0
CAP = 3


def _state(rig: Rig) -> tuple[int, int, bool]:
    """Requests in flight, packets in the backlog, whether reading is paused."""
    channel = rig.channel
    return channel.in_flight, len(channel.backlog or ()), channel.conn.reading_paused


@dataclass
class Rig:
    clock: FakeClock
    gateway: Gateway
    forwarded: list[LogicPacket]
    channel: Channel
    client: RawClient

    def answer(self, packet: LogicPacket) -> None:
        """The logic node answers ``packet`` (as the link would deliver it)."""
        response = packet.replace(meta=()).response()
        self.gateway.router.on_logic_packet(None, response, response.encode())  # type: ignore[arg-type]


async def _rig(settings: GatewaySettings, info: TenantInfo) -> tuple[Rig, list[object]]:
    clock = FakeClock()
    directory = TenantDirectory(UNREACHABLE, "s")
    gateway = Gateway(settings, directory, clock=clock)
    forwarded: list[LogicPacket] = []

    def send_to_logic(channel: Channel, packet: LogicPacket) -> bool:
        forwarded.append(packet.replace(channel_id=channel.id))
        return True

    gateway.router.send_to_logic = send_to_logic  # type: ignore[method-assign]
    accepted: list[PacketConnection] = []
    server = await serve_tcp("127.0.0.1", 0, accepted.append, clock=clock.now)
    client = RawClient(await connect_tcp("127.0.0.1", server.sockets[0].getsockname()[1]))
    await until(lambda: bool(accepted))
    conn = accepted[0]
    # A client that names its version gets cirno's statuses (a kim client would get
    # 429 as kim's 300, see data_plane/gateway/kim_compat.py).
    channel = Channel("gw_alice_1", conn, "acme", "alice", "phone", client_version="test")
    channel.logged_in = True
    gateway.router.channels[channel.id] = channel
    gateway.throttle.set_up(channel, info)
    sessions = gateway.sessions
    conn.set_receiver(lambda batch: sessions.forward_batch(channel, batch))
    return Rig(clock, gateway, forwarded, channel, client), [server, directory, gateway, conn]


@pytest.fixture
async def capped() -> AsyncIterator[Rig]:
    settings = GatewaySettings(
        cluster_secret="s",
        control_url=UNREACHABLE,
        max_in_flight=CAP,
        commands_per_second=0,
        account_commands_per_second=0,
        logic_request_timeout=TIMEOUT,
    )
    rig, owned = await _rig(settings, TenantInfo("acme", True, ()))
    yield rig
    await _close(rig, owned)


async def _close(rig: Rig, owned: list[object]) -> None:
    server, directory, gateway, conn = owned
    rig.client.close()
    conn.close()  # type: ignore[attr-defined]
    server.close()  # type: ignore[attr-defined]
    await directory.aclose()  # type: ignore[attr-defined]
    await gateway.registry.aclose()  # type: ignore[attr-defined]


async def test_past_the_cap_the_connection_is_not_read_until_answers_come(capped: Rig) -> None:
    rig = capped
    for _ in range(10):
        rig.client.request(Command.CHAT_GROUP_MEMBERS)
    await until(lambda: len(rig.forwarded) == CAP and rig.channel.conn.reading_paused)
    assert rig.channel.in_flight == CAP
    rig.answer(rig.forwarded[0])
    await until(lambda: len(rig.forwarded) == CAP + 1)
    assert _state(rig) == (CAP, 10 - CAP - 1, True)
    answered = 1
    while answered < 10:  # each answer lets one more through, never more than CAP out
        assert rig.channel.in_flight <= CAP
        await until(lambda n=answered: len(rig.forwarded) > n)  # type: ignore[misc]
        rig.answer(rig.forwarded[answered])
        answered += 1
    assert len(rig.forwarded) == 10
    assert _state(rig) == (0, 0, False)  # nothing out, nothing kept, reading again
    sequences = [p.sequence for p in rig.forwarded]
    assert sequences == sorted(sequences)  # order kept through the backlog


async def test_answers_lost_with_a_link_do_not_hold_the_connection_forever(capped: Rig) -> None:
    rig = capped
    for _ in range(2 * CAP):
        rig.client.request(Command.CHAT_GROUP_MEMBERS)
    await until(lambda: len(rig.forwarded) == CAP and rig.channel.conn.reading_paused)
    await rig.clock.advance(TIMEOUT - 0.001)
    assert len(rig.forwarded) == CAP  # still waiting for answers
    await rig.clock.advance(0.001)  # none came in a whole request timeout
    await until(lambda: len(rig.forwarded) == 2 * CAP)
    for packet in rig.forwarded[CAP:]:
        rig.answer(packet)
    assert not rig.channel.conn.reading_paused


async def test_a_flooding_client_gets_429_then_a_close() -> None:
    settings = GatewaySettings(
        cluster_secret="s", control_url=UNREACHABLE, max_in_flight=0, commands_per_second=5
    )
    rig, owned = await _rig(settings, TenantInfo("acme", True, ()))
    try:
        for _ in range(200):
            rig.client.request(Command.CHAT_GROUP_CREATE)
        statuses: list[int] = []
        with anyio.fail_after(5):
            while len(statuses) < 200:
                try:
                    packet = await rig.client.next_packet()
                except Exception:
                    break
                assert isinstance(packet, LogicPacket)
                statuses.append(packet.status)
        assert len(rig.forwarded) == 10  # only the burst (2 s' worth) reached the logic node
        assert statuses.count(Status.RATE_LIMITED) >= 50
        code, reason = await rig.client.closed()
        assert (code, reason) == (CloseCode.RATE_LIMITED, "kept sending over the rate limit")
    finally:
        await _close(rig, owned)
