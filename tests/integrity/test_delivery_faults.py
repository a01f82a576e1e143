"""The two pushes issue 11 saw lost, over real processes, for kim-style receivers.

A kim client never fills gaps: it acks the newest push and, at login, syncs after its
last acked id. So a push that is skipped while the device stays connected is lost for
good once a later push moves its ack past it. Both faults below used to do that:

1. **the session store failing while a push is due**: the receiver's location lookup
   fails (Redis frozen with SIGSTOP until the client's 2 s timeout), the push was
   skipped, and the next message's push reached the device;
2. **a logic node restart** where a gateway routes an account to the restarted node
   before the node's link to another gateway is up (that gateway is frozen with SIGSTOP
   meanwhile): the push to the receiver on the unlinked gateway was dropped silently.

Now the receiver gets every message once and in order, stays connected, and its sync
after the last ack finds nothing it missed. Every role is its own ``cirno <role>``
process on MySQL and a private ``redis-server``.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from cirno.harness import RawClient, Topology, make_token, run_topology
from data_plane.cluster.selection import rendezvous_pick
from data_plane.wire import Command, Status, pb
from tests.private_redis import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.anyio]

TENANT = "delivery"
SECRET = "delivery-tenant-secret-0123456789-abcdef"


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_server: PrivateRedis
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("delivery")),
        database_url=mysql_url,
        session_url=redis_server.url,
        session_prefix="delivery",
        logic_nodes=2,
        gateways=2,
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


def account_on(node: str, prefix: str) -> str:
    """A fresh account whose logic node (rendezvous hashing) is ``node``."""
    while True:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        if rendezvous_pick({"logic-1": 0, "logic-2": 0}, f"{TENANT}:{name}") == node:
            return name


class KimReceiver:
    """A receiver as the kim web SDK behaves: default device, no client version, no gap
    filling; it acks the newest push and syncs after its last acked id."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.acked = 0

    @classmethod
    async def login(cls, url: str, name: str) -> KimReceiver:
        client = await RawClient.websocket(url)
        answer = await client.login(
            make_token(TENANT, name, SECRET),
            timeout=20,
            client_version="",  # a kim client
        )
        assert answer.status == Status.SUCCESS, answer
        receiver = cls(client)
        assert await receiver.sync_after_ack() == []  # a new account: nothing yet
        return receiver

    async def next(self, timeout: float = 20) -> pb.MessagePush:
        packet = await self.client.push(Command.CHAT_USER_TALK, timeout=timeout)
        push = packet.parse_body(pb.MessagePush)
        self.client.request(Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=push.messageId))
        self.acked = push.messageId
        return push

    async def sync_after_ack(self) -> list[int]:
        """``chat.offline.index`` after the last acked id, as kim does at login."""
        seq = self.client.request(
            Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=self.acked)
        )
        answer = await self.client.response(seq, timeout=20)
        assert answer.status == Status.SUCCESS, answer
        return [i.message_id for i in answer.parse_body(pb.MessageIndexResp).indexes]


async def login(url: str, name: str) -> RawClient:
    client = await RawClient.websocket(url)
    answer = await client.login(
        make_token(TENANT, name, SECRET),
        timeout=20,
        client_version="",  # a kim client
    )
    assert answer.status == Status.SUCCESS, answer
    return client


async def talk(client: RawClient, to: str, body: str) -> int:
    """One send, resent with the same client message id until a node answers it."""
    req = pb.MessageReq(type=1, body=body, client_msg_id=uuid.uuid4().hex)
    with anyio.fail_after(40):
        while True:
            seq = client.request(Command.CHAT_USER_TALK, req, dest=to)
            answer = await client.response(seq, timeout=20)
            if answer.status == Status.SUCCESS:
                return answer.parse_body(pb.MessageResp).messageId
            await anyio.sleep(0.2)  # no node for us yet: the gateway is relinking


def log_count(topology: Topology, name: str, text: str) -> int:
    return (topology.log_dir / f"{name}.log").read_text(errors="replace").count(text)


async def until_logged(topology: Topology, name: str, text: str, count: int, limit: float) -> bool:
    """Wait (at most ``limit`` s) until ``name``'s log holds ``text`` ``count`` times."""
    with anyio.move_on_after(limit):
        while True:
            if log_count(topology, name, text) >= count:
                return True
            await anyio.sleep(0.05)  # a log file to poll: no event to wait for
    return False


async def expect_in_order(receiver: KimReceiver, ids: list[int]) -> None:
    got = [(await receiver.next()).messageId for _ in ids]
    assert got == ids


async def test_a_push_due_while_the_session_store_fails_still_arrives_in_order(
    topology: Topology, redis_server: PrivateRedis
) -> None:
    sender = await login(topology.ws_urls[0], account_on("logic-1", "s1"))
    name = account_on("logic-2", "r1")
    receiver = await KimReceiver.login(topology.ws_urls[0], name)
    first = await talk(sender, name, "one")
    await expect_in_order(receiver, [first])

    assert redis_server.process is not None
    held = log_count(topology, "logic-1", "session store unavailable")
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        lost = await talk(sender, name, "two: its lookup fails")
        # The lookup fails after the Redis client's 2 s timeout (logged on both old and
        # new code); only then is Redis let go.
        assert await until_logged(
            topology, "logic-1", "session store unavailable", held + 1, limit=20
        )
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    third = await talk(sender, name, "three: after the store is back")
    await expect_in_order(receiver, [lost, third])
    fourth = await talk(sender, name, "four")
    await expect_in_order(receiver, [fourth])  # nothing twice
    assert await receiver.sync_after_ack() == []
    assert not receiver.client.conn.is_closed
    sender.close()
    receiver.client.close()


async def test_a_push_from_a_restarted_node_to_a_gateway_not_linked_yet_arrives(
    topology: Topology,
) -> None:
    sender = await login(topology.ws_urls[0], account_on("logic-1", "s2"))
    name = account_on("logic-2", "r2")
    receiver = await KimReceiver.login(topology.ws_urls[1], name)  # on gateway 2
    first = await talk(sender, name, "one")
    await expect_in_order(receiver, [first])

    linked = log_count(topology, "logic-1", "gateway gw-1 linked")
    gateway_2 = topology.processes["gateway-2"]
    topology.stop("logic-1", signal.SIGKILL)
    gateway_2.send_signal(signal.SIGSTOP)  # it cannot link to the new logic-1 yet
    try:
        port = topology.logic_addrs[0][1]
        env = {"CIRNO_LOGIC_ID": "logic-1", "CIRNO_LOGIC_PORT": str(port)}
        topology.start("logic-1", "logic", env)
        # Gateway 1 routes the sender to logic-1 again once linked to it.
        assert await until_logged(topology, "logic-1", "gateway gw-1 linked", linked + 1, 40)
        lost = await talk(sender, name, "two: gateway 2 has not linked to logic-1")
        # The new node holds it (old code drops it and says nothing: the wait just ends).
        await until_logged(topology, "logic-1", "pushes held for gateway gw-2", 1, 5)
    finally:
        gateway_2.send_signal(signal.SIGCONT)
    await expect_in_order(receiver, [lost])
    third = await talk(sender, name, "three")
    await expect_in_order(receiver, [third])
    assert await receiver.sync_after_ack() == []
    assert not receiver.client.conn.is_closed
    sender.close()
    receiver.client.close()
