"""The lost 1:1 push (docs/operations.md, "Known gap") reproduced over real processes.

A logic node that dies after committing a 1:1 message and before pushing it never
pushes it, and the receiver's connection stays up (its gateway just redials another
logic node), so nothing makes the receiver re-login and sync. We widen the window
between commit and push by pausing the node's Redis (``CLIENT PAUSE``: the push's
location lookup blocks, the commit and the answer do not need Redis), kill the node
with SIGKILL once the sender has its answer, and send the next message through the
surviving node. The receiver's gateway notices the missing inbox row (its link to the
dead node went down, and the next push skips a number) and has it pushed again from the
store: a raw (kim-style) device of the receiver gets every push once and in order, and
so does the SDK device, both without reconnecting.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from cirno.harness import RawClient, Topology, make_token, run_topology
from cirno_sdk import Client, ClientOptions, Disconnected, Event, Message, Reconnected
from data_plane.cluster.selection import rendezvous_pick
from data_plane.wire import Command, Status, pb
from tests.private_redis import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.anyio]

TENANT = "pushgap"
SECRET = "pushgap-tenant-secret-0123456789-abcdef"
PAUSE_MS = 4000
"""Long enough to get the answer and kill the node while its push waits on Redis."""


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_server: PrivateRedis
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("pushgap")),
        database_url=mysql_url,
        session_url=redis_server.url,
        session_prefix="pushgap",
        logic_nodes=2,
        gateways=1,
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


def account_on(node: str, prefix: str) -> str:
    """A fresh account whose logic node (rendezvous hashing) is ``node``."""
    nodes = {"logic-1": 0, "logic-2": 0}
    while True:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        if rendezvous_pick(nodes, f"{TENANT}:{name}") == node:
            return name


async def raw_login(topology: Topology, name: str, device: str) -> RawClient:
    client = await RawClient.websocket(topology.ws_urls[0])
    answer = await client.login(make_token(TENANT, name, SECRET), device=device, timeout=20)
    assert answer.status == Status.SUCCESS, answer
    return client


async def talk(client: RawClient, to: str, body: str) -> pb.MessageResp:
    """One send, resent with the same client message id until a node answers it."""
    req = pb.MessageReq(type=1, body=body, client_msg_id=uuid.uuid4().hex)
    with anyio.fail_after(30):
        while True:
            answer = await client.response(
                client.request(Command.CHAT_USER_TALK, req, dest=to), timeout=20
            )
            if answer.status == Status.SUCCESS:
                return answer.parse_body(pb.MessageResp)
            await anyio.sleep(0.2)  # the gateway has not yet moved us off the dead node


async def pushed(client: RawClient) -> pb.MessagePush:
    return (await client.push(Command.CHAT_USER_TALK, timeout=20)).parse_body(pb.MessagePush)


async def test_a_push_lost_with_its_logic_node_reaches_the_online_receiver(
    topology: Topology, redis_server: PrivateRedis
) -> None:
    sender_name = account_on("logic-1", "sender")  # its node is the one we kill
    receiver_name = account_on("logic-2", "receiver")  # its node survives
    events: list[Event] = []
    options = ClientOptions(on_event=events.append)
    sender = await raw_login(topology, sender_name, "phone")
    raw = await raw_login(topology, receiver_name, "raw")
    token = make_token(TENANT, receiver_name, SECRET)
    redis = aioredis.Redis.from_url(redis_server.url)
    async with Client(topology.ws_urls[0], token, device="sdk", options=options) as sdk:
        await sdk.sync(timeout=20)
        got: list[Message] = []

        async def receive(count: int) -> None:
            with anyio.fail_after(30):
                async for message in sdk.messages():
                    got.append(message)
                    if len(got) == count:
                        return

        first = await talk(sender, receiver_name, "one")
        assert (await pushed(raw)).inbox_seq == 1
        await receive(1)

        await redis.client_pause(PAUSE_MS)
        lost = await talk(sender, receiver_name, "two: committed, never pushed")
        await anyio.to_thread.run_sync(topology.stop, "logic-1", signal.SIGKILL)
        with anyio.fail_after(PAUSE_MS / 1000 + 10):
            while True:  # until Redis answers again (the pause ends by itself)
                try:
                    await redis.ping()
                    break
                except aioredis.RedisError:
                    await anyio.sleep(0.1)

        third = await talk(sender, receiver_name, "three: through logic-2")
        # The raw device, which fills no gaps, still gets 2 before 3.
        filled, after = await pushed(raw), await pushed(raw)
        assert (filled.messageId, filled.inbox_seq) == (lost.messageId, 2)
        assert (after.messageId, after.inbox_seq) == (third.messageId, 3)
        await receive(3)
        assert [m.message_id for m in got] == [first.messageId, lost.messageId, third.messageId]
        # Whether the lost one came pushed or by a gap-fill sync, it arrives loaded: only
        # the catch-up after a login is lazy.
        assert all(m.content_loaded for m in got)
        assert [m.body for m in got] == [
            "one",
            "two: committed, never pushed",
            "three: through logic-2",
        ]
        assert sdk.online
        assert not [e for e in events if isinstance(e, (Disconnected, Reconnected))]
        # Nothing more (no duplicate) comes.
        with anyio.move_on_after(1.0):
            extra = await sdk.messages().__anext__()
            pytest.fail(f"delivered twice: {extra}")
    await redis.aclose()
    sender.close()
    raw.close()
