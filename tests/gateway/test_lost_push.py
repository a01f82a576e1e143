"""A lost push, in process: a real logic node (memory stores) whose hub loses chosen
pushes, a real gateway on a fake clock, and raw kim-style clients over loopback TCP
(no device, no client version, no gap filling: they ack the newest push).

The gateway's sequencer notices the hole (a later push, or its periodic head check when
nothing follows), waits the grace on the fake clock, and has the row pushed again from
the store: the receiver gets every message once, in order, without reconnecting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest

from cirno.harness import RawClient, make_token
from data_plane.cluster.tenants import TenantDirectory, TenantInfo, TenantKey
from data_plane.gateway.channel import Channel
from data_plane.gateway.holes import GRACE, SWEEP_INTERVAL
from data_plane.gateway.inbox import KIM_SYNC_WAIT
from data_plane.gateway.server import Gateway
from data_plane.gateway.settings import GatewaySettings
from data_plane.logic.context import GatewayHub
from data_plane.logic.handlers.chat import ChatHandlers
from data_plane.logic.handlers.conversations import ConversationHandlers
from data_plane.logic.handlers.group import GroupHandlers
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.handlers.presence import Presence
from data_plane.logic.handlers.recall import RecallHandlers
from data_plane.logic.handlers.sync import SyncHandlers
from data_plane.logic.handlers.typing import TypingHandlers
from data_plane.logic.main import handlers_by_service, split_by_services
from data_plane.logic.pushes import Pusher
from data_plane.logic.router import Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.memory import MemoryMessageStore
from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.wire import Command, LogicPacket, Status, decode_packet, pb
from tests.gateway.fake_clock import FakeClock
from tests.waiting import until

pytestmark = pytest.mark.anyio

TENANT = "acme"
SECRET = "acme-secret-0123456789-abcdefghijklmn"
UNREACHABLE = "http://127.0.0.1:9"


class LosingHub(GatewayHub):
    """Loses (reports sent, sends nothing) pushes whose body says ``lose`` - as if the
    node died between the commit and the push."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def send(self, gateway_id: str, data: bytes) -> bool:
        packet = decode_packet(data)
        if (
            isinstance(packet, LogicPacket)
            and packet.command == Command.CHAT_USER_TALK
            and packet.parse_body(pb.MessagePush).body.startswith("lose")
        ):
            self.lost += 1
            return True
        return super().send(gateway_id, data)


@dataclass
class Rig:
    clock: FakeClock
    gateway: Gateway
    hub: LosingHub

    async def login(self, account: str, *, sync: bool = True) -> RawClient:
        client = await RawClient.tcp(("127.0.0.1", self.gateway.tcp_port))
        token = make_token(TENANT, account, SECRET)
        answer = await client.login(token, client_version="")  # a kim client
        assert answer.status == Status.SUCCESS
        if sync:  # kim syncs after its last ack right after login
            await synced(client)
        return client

    def channel_of(self, account: str) -> Channel:
        [channel] = [c for c in self.gateway.channels.values() if c.account == account]
        return channel


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sessions = MemorySessionStore()
    hub = LosingHub()
    logic_settings = LogicSettings(cluster_secret="s", node_id="logic-1", port=0)
    clock = FakeClock()
    async with anyio.create_task_group() as tg:
        stores = TenantStores(MemoryMessageStore(node_id=1), None, tg, node_id=1)
        pusher = Pusher(sessions, hub)
        tg.start_soon(pusher.run)
        presence = Presence(sessions, hub)
        by_service = handlers_by_service(
            LoginHandlers(sessions, hub, stores, presence),
            ChatHandlers(stores, pusher),
            GroupHandlers(stores, pusher),
            SyncHandlers(stores),
            presence,
            TypingHandlers(stores, sessions, hub),
            ConversationHandlers(stores, sessions, hub),
            RecallHandlers(stores, sessions, hub, recall_window_s=60.0),
        )
        handlers, not_served = split_by_services(by_service, logic_settings)
        server = LogicServer(logic_settings, Router(handlers, not_served), hub)
        await tg.start(server.run)
        settings = GatewaySettings(
            cluster_secret="s",
            control_url=UNREACHABLE,
            gateway_id="gw-1",
            ws_port=0,
            tcp_port=0,
            logic_addrs=(("127.0.0.1", server.port),),
        )
        directory = TenantDirectory(UNREACHABLE, "s")
        directory._tenants = {TENANT: TenantInfo(TENANT, True, (TenantKey("", SECRET),))}
        gateway = Gateway(settings, directory, clock=clock)
        await tg.start(gateway.run)
        await until(lambda: gateway.pool.ready.is_set())
        yield Rig(clock, gateway, hub)
        tg.cancel_scope.cancel()


async def synced(client: RawClient) -> list[int]:
    """The ids ``chat.offline.index`` after the read index returns."""
    seq = client.request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    answer = await client.response(seq)
    assert answer.status == Status.SUCCESS
    return [index.message_id for index in answer.parse_body(pb.MessageIndexResp).indexes]


async def talk(sender: RawClient, to: str, body: str) -> pb.MessageResp:
    seq = sender.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=body), dest=to)
    answer = await sender.response(seq)
    assert answer.status == Status.SUCCESS
    return answer.parse_body(pb.MessageResp)


async def receive(client: RawClient) -> pb.MessagePush:
    """The next push, acknowledged as kim does (the newest id)."""
    push = (await client.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    client.request(Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=push.messageId))
    return push


async def test_a_lost_push_followed_by_another_is_filled_in_order(rig: Rig) -> None:
    sender, receiver = await rig.login("bob"), await rig.login("alice")
    inbox = rig.channel_of("alice").sequencer
    assert inbox is not None and inbox.next_seq == 1
    one = await talk(sender, "alice", "one")
    assert (await receive(receiver)).messageId == one.messageId
    two = await talk(sender, "alice", "lose two")
    three = await talk(sender, "alice", "three")
    await until(lambda: inbox.held == 1)  # three waits behind the hole
    assert rig.hub.lost == 1
    await rig.clock.advance(GRACE)
    got = [await receive(receiver), await receive(receiver)]
    assert [(p.messageId, p.inbox_seq, p.body) for p in got] == [
        (two.messageId, 2, "lose two"),
        (three.messageId, 3, "three"),
    ]
    assert got[0].sender == "bob" and rig.hub.lost == 1
    four = await talk(sender, "alice", "four")  # nothing twice, nothing stuck
    assert (await receive(receiver)).messageId == four.messageId
    # The sender's own sends took its rows 1..4: its stream has no hole.
    assert rig.channel_of("bob").sequencer is not None
    assert rig.channel_of("bob").sequencer.next_seq == 5  # type: ignore[union-attr]
    assert rig.channel_of("bob").sequencer.hole() is None  # type: ignore[union-attr]


async def test_a_lost_last_push_is_found_by_the_head_check(rig: Rig) -> None:
    sender, receiver = await rig.login("bob"), await rig.login("alice")
    one = await talk(sender, "alice", "one")
    assert (await receive(receiver)).messageId == one.messageId
    lost = await talk(sender, "alice", "lose: nothing follows")
    inbox = rig.channel_of("alice").sequencer
    assert inbox is not None and inbox.hole() is None  # nothing reveals it yet
    await rig.clock.advance(SWEEP_INTERVAL)  # the periodic head check asks
    await until(lambda: inbox.hole() is not None)
    await rig.clock.advance(GRACE)
    push = await receive(receiver)
    assert (push.messageId, push.inbox_seq) == (lost.messageId, 2)
    after = await talk(sender, "alice", "after")
    assert (await receive(receiver)).messageId == after.messageId


async def test_a_row_the_login_sync_gave_is_not_pushed_again(rig: Rig) -> None:
    sender = await rig.login("bob")
    receiver = await rig.login("alice", sync=False)
    lost = await talk(sender, "alice", "lose: its push is late, the sync has it")
    assert await synced(receiver) == [lost.messageId]
    # The late push (the gap fill here) of a row the sync gave is dropped.
    inbox = rig.channel_of("alice").sequencer
    assert inbox is not None and inbox.next_seq == 2 and inbox.hole() is None
    two = await talk(sender, "alice", "two")
    assert (await receive(receiver)).messageId == two.messageId


async def test_a_kim_clients_pushes_wait_for_its_login_sync(rig: Rig) -> None:
    """A push never overtakes a message a kim client's login sync returns, nor is it
    shown twice: it waits for the sync, which has it, and is then dropped."""
    sender = await rig.login("bob")
    early = await talk(sender, "alice", "before the login")
    receiver = await rig.login("alice", sync=False)
    overtook = await talk(sender, "alice", "sent before the client synced")
    assert await synced(receiver) == [early.messageId, overtook.messageId]
    after = await talk(sender, "alice", "after the sync")
    assert (await receive(receiver)).messageId == after.messageId  # nothing in between


async def test_a_kim_client_that_does_not_sync_gets_its_pushes_after_the_wait(
    rig: Rig,
) -> None:
    sender = await rig.login("bob")
    receiver = await rig.login("alice", sync=False)
    one = await talk(sender, "alice", "one")
    channel = rig.channel_of("alice")
    await until(lambda: len(channel.early or ()) == 1)  # waiting for a sync that never comes
    await rig.clock.advance(KIM_SYNC_WAIT)
    assert (await receive(receiver)).messageId == one.messageId
    two = await talk(sender, "alice", "two")
    assert (await receive(receiver)).messageId == two.messageId


async def test_a_later_kim_sync_leaves_out_what_was_already_pushed(rig: Rig) -> None:
    sender = await rig.login("bob")
    receiver = await rig.login("alice")
    pushed = await talk(sender, "alice", "pushed")
    push = (await receiver.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert push.messageId == pushed.messageId  # not acked yet: kim acks every 3 s
    assert await synced(receiver) == []  # the connection has it: not listed again
