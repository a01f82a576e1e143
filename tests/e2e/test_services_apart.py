"""Login and chat deployed apart: real processes on real MySQL and Redis.

logic-1 runs only ``login``; logic-2 runs ``chat``, ``group`` and ``sync``; two gateways
link to both. Logins are recorded by logic-1 in the shared session store; 1:1 and group
messages, their pushes (addressed by the locations logic-1 recorded, sent back over the
link of the gateway holding the receiver) and offline sync all run on logic-2. Each
node's own request counters show which node served what. When the chat node stops,
chat commands get the answer a gateway gives when no logic node is reachable, while
logins still work.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cirno.harness import RawClient, Topology, free_port, make_token, run_topology
from data_plane.wire import Command, LogicPacket, Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

TENANT = "apart"
SECRET = "services-apart-secret-0123456789-abcd"
_COUNTER = re.compile(
    r'^cirno_logic_requests_total\{command="([^"]+)",outcome="([^"]+)"\} (\S+)$', re.M
)


@dataclass
class Apart:
    """The running topology and each logic node's metrics port."""

    topology: Topology
    metrics: dict[str, int]

    def served(self, node: str, command: str) -> float:
        """How many ``command`` requests ``node`` ran a handler for (any outcome)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics[node]}/", timeout=5).text
        return sum(
            float(value)
            for found, outcome, value in _COUNTER.findall(text)
            if found == command and outcome in ("ok", "error")
        )


@pytest.fixture(scope="module")
def apart(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Apart]:
    """Control plane, a login node, a chat/group/sync node and two gateways."""
    metrics = {"logic-1": free_port(), "logic-2": free_port()}
    with run_topology(
        Path(tmp_path_factory.mktemp("apart")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=2,
        gateways=2,
        logic_env=[
            {"CIRNO_LOGIC_SERVICES": "login", "CIRNO_LOGIC_METRICS_PORT": str(metrics["logic-1"])},
            {
                "CIRNO_LOGIC_SERVICES": "chat,group,sync",
                "CIRNO_LOGIC_METRICS_PORT": str(metrics["logic-2"]),
            },
        ],
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield Apart(running, metrics)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def login(apart: Apart, gateway: int, account: str) -> RawClient:
    client = await RawClient.websocket(apart.topology.ws_urls[gateway])
    answer = await client.login(make_token(TENANT, account, SECRET), timeout=15)
    assert answer.status == Status.SUCCESS, answer
    assert account in answer.parse_body(pb.LoginResp).channelId
    return client


async def ask(client: RawClient, command: str, body: object, dest: str = "") -> LogicPacket:
    """Send a request that must succeed; its answer."""
    seq = client.request(command, body, dest=dest)
    answer = await client.response(seq, timeout=15)
    assert answer.status == Status.SUCCESS, (command, answer)
    return answer


async def test_login_on_one_node_chat_group_and_sync_on_another(apart: Apart) -> None:
    logins_before = apart.served("logic-1", Command.LOGIN_SIGNIN)
    alice_name, bob_name, carol_name = unique("alice"), unique("bob"), unique("carol")
    alice = await login(apart, 0, alice_name)
    bob = await login(apart, 1, bob_name)  # on the other gateway
    assert apart.served("logic-1", Command.LOGIN_SIGNIN) == logins_before + 2
    assert apart.served("logic-2", Command.LOGIN_SIGNIN) == 0

    # 1:1: stored and answered by logic-2, pushed to bob's gateway by the location
    # logic-1 recorded; carol is offline.
    talk = pb.MessageReq(type=1, body="hi bob")
    sent = (await ask(alice, Command.CHAT_USER_TALK, talk, bob_name)).parse_body(pb.MessageResp)
    push = (await bob.push(Command.CHAT_USER_TALK, timeout=15)).parse_body(pb.MessagePush)
    assert (push.messageId, push.body, push.sender) == (sent.messageId, "hi bob", alice_name)
    to_carol = pb.MessageReq(type=1, body="hi carol")
    await ask(alice, Command.CHAT_USER_TALK, to_carol, carol_name)

    # Group: created, announced and talked in through logic-2.
    create = pb.GroupCreateReq(name="apart", members=[bob_name, carol_name])
    group_id = (
        (await ask(alice, Command.CHAT_GROUP_CREATE, create)).parse_body(pb.GroupCreateResp)
    ).group_id
    notify = (await bob.push(Command.CHAT_GROUP_CREATE, timeout=15)).parse_body(
        pb.GroupCreateNotify
    )
    assert notify.group_id == group_id
    group_talk = pb.MessageReq(type=1, body="hi all")
    said = (await ask(alice, Command.CHAT_GROUP_TALK, group_talk, group_id)).parse_body(
        pb.MessageResp
    )
    pushed = (await bob.push(Command.CHAT_GROUP_TALK, timeout=15)).parse_body(pb.MessagePush)
    assert (pushed.messageId, pushed.group, pushed.seq) == (said.messageId, group_id, 1)

    # Offline sync: carol logs in (logic-1) and pulls both messages (logic-2).
    carol = await login(apart, 0, carol_name)
    page = (
        await ask(carol, Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    ).parse_body(pb.MessageIndexResp)
    ids = [entry.message_id for entry in page.indexes]
    assert [entry.group for entry in page.indexes] == ["", group_id]
    contents = (
        await ask(carol, Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=ids))
    ).parse_body(pb.MessageContentResp)
    assert [content.body for content in contents.contents] == ["hi carol", "hi all"]

    for command, count in [
        (Command.CHAT_USER_TALK, 2),
        (Command.CHAT_GROUP_CREATE, 1),
        (Command.CHAT_GROUP_TALK, 1),
        (Command.CHAT_OFFLINE_INDEX, 1),
        (Command.CHAT_OFFLINE_CONTENT, 1),
    ]:
        assert apart.served("logic-2", command) == count, command
        assert apart.served("logic-1", command) == 0, command
    for client in (alice, bob, carol):
        client.close()


async def test_without_a_chat_node_chat_is_refused_and_login_still_works(apart: Apart) -> None:
    """Runs last: it stops the chat node."""
    assert apart.topology.stop("logic-2") == 0
    dave_name = unique("dave")
    dave = await login(apart, 0, dave_name)
    # The stopped node closed its links before it exited, and dave's login went through
    # this gateway since: the gateway knows no node runs chat (logic-2 could not answer).
    seq = dave.request(
        Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="anyone?"), dest=dave_name
    )
    answer = await dave.response(seq, timeout=15)
    assert answer.status == Status.SYSTEM_EXCEPTION
    assert answer.parse_body(pb.ErrorResp).message == "no logic node available"
    dave.close()
