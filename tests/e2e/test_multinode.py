"""Several logic nodes and gateways on real MySQL and Redis: nothing lost, nothing twice.

Each role runs as its own ``cirno <role>`` process; senders are chosen so that both
logic nodes store messages for the same receiver, who pulls with the cursor while they
send and ends with every acknowledged message exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from cirno.harness import RawClient, Topology, make_token, run_topology
from data_plane.cluster.selection import rendezvous_pick
from data_plane.wire import Command, Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

TENANT = "multi"
SECRET = "multi-node-secret-0123456789-abcdefgh"
PULL_INTERVAL = 0.07


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    """Control plane, two logic nodes and two gateways on MySQL and Redis."""
    with run_topology(
        Path(tmp_path_factory.mktemp("topology")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=2,
        gateways=2,
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


async def _login(url: str, account: str) -> RawClient:
    client = await RawClient.websocket(url)
    answer = await client.login(make_token(TENANT, account, SECRET), timeout=15)
    assert answer.status == Status.SUCCESS, answer
    return client


async def test_concurrent_senders_through_two_logic_nodes(topology: Topology) -> None:
    receiver_name = f"rcv-{uuid.uuid4().hex[:6]}"
    senders: list[str] = []
    per_node = {"logic-1": 0, "logic-2": 0}
    candidate = 0
    while min(per_node.values()) < 2:  # two senders owned by each logic node
        name = f"snd-{candidate}-{uuid.uuid4().hex[:4]}"
        candidate += 1
        owner = rendezvous_pick(per_node, f"{TENANT}:{name}")
        assert owner is not None
        if per_node[owner] < 2:
            per_node[owner] += 1
            senders.append(name)

    receiver = await _login(topology.ws_urls[1], receiver_name)
    clients = [await _login(topology.ws_urls[0], name) for name in senders]
    per_sender = 40
    acknowledged: dict[str, list[int]] = {name: [] for name in senders}
    pulled: list[pb.MessageIndex] = []
    sending = True

    async def send_all(client: RawClient, name: str) -> None:
        for i in range(per_sender):
            seq = client.request(
                Command.CHAT_USER_TALK,
                pb.MessageReq(type=1, body=f"{name}:{i}", client_msg_id=f"{name}-{i}"),
                dest=receiver_name,
            )
            answer = await client.response(seq, timeout=15)
            assert answer.status == Status.SUCCESS, answer
            acknowledged[name].append(answer.parse_body(pb.MessageResp).messageId)

    async def pull_until_done() -> None:
        cursor = 0
        while True:
            finished = not sending
            seq = receiver.request(
                Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=cursor)
            )
            answer = await receiver.response(seq, timeout=15)
            assert answer.status == Status.SUCCESS
            page = answer.parse_body(pb.MessageIndexResp)
            pulled.extend(page.indexes)
            if page.indexes:
                cursor = page.indexes[-1].message_id
            elif finished:
                return
            # Paced under the gateway's default 20 requests/s per connection, as a
            # client polling in a loop must be (faster gets 429, then 4008).
            await anyio.sleep(PULL_INTERVAL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pull_until_done)
        async with anyio.create_task_group() as senders_group:
            for client, name in zip(clients, senders, strict=True):
                senders_group.start_soon(send_all, client, name)
        sending = False

    pulled_ids = [entry.message_id for entry in pulled]
    all_acked = [mid for ids in acknowledged.values() for mid in ids]
    assert len(all_acked) == len(senders) * per_sender
    assert len(pulled_ids) == len(set(pulled_ids)), "a message was pulled twice"
    assert set(pulled_ids) == set(all_acked), "an acknowledged message was never pulled"
    seqs = [entry.seq for entry in pulled]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    position = {mid: index for index, mid in enumerate(pulled_ids)}
    for name, ids in acknowledged.items():
        assert [position[mid] for mid in ids] == sorted(position[mid] for mid in ids), (
            f"{name}'s messages are out of order in the receiver's inbox"
        )
    # Pushes crossed gateways too. The receiver (on gateway 2) pulled while they came: a
    # row its pulls returned counts as delivered at its gateway, so its push is dropped
    # rather than sent twice. Pushes come once each, and a last message arrives live.
    last_seq = clients[0].request(
        Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="last"), dest=receiver_name
    )
    last = (await clients[0].response(last_seq, timeout=15)).parse_body(pb.MessageResp)
    pushed: list[int] = []
    while not pushed or pushed[-1] != last.messageId:
        push = await receiver.push(Command.CHAT_USER_TALK, timeout=15)
        pushed.append(push.parse_body(pb.MessagePush).messageId)
    assert len(pushed) == len(set(pushed)), "a message was pushed twice"
    assert set(pushed) <= {*all_acked, last.messageId}
    for client in [receiver, *clients]:
        client.close()
