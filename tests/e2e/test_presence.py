"""Presence and typing end to end: two logic nodes and two gateways as their own
processes on real MySQL and Redis.

The follower and the followed account are chosen so that different logic nodes own
them (rendezvous on ``tenant:account``) and they connect through different gateways,
so every presence push crosses nodes through the shared session store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pymysql
import pytest
from redis.asyncio import Redis

from cirno.harness import RawClient, Topology, make_token, run_topology
from data_plane.cluster.selection import rendezvous_pick
from data_plane.logic.handlers.presence import MAX_WATCHES_PER_CONNECTION
from data_plane.storage.sessions.redis_codec import escape
from data_plane.wire import Command, Flag, LogicPacket, Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

TENANT = "presence"
SECRET = "presence-secret-0123456789-abcdefgh"
PREFIX = f"cirnotest:{uuid.uuid4().hex[:8]}"
NODES = {"logic-1": 0, "logic-2": 0}


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("presence")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=PREFIX,
        logic_nodes=2,
        gateways=2,
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


def owned_by(node: str, prefix: str) -> str:
    """A fresh account name that logic node ``node`` owns."""
    while True:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        if rendezvous_pick(NODES, f"{TENANT}:{name}") == node:
            return name


async def online(url: str, account: str, device: str = "") -> RawClient:
    client = await RawClient.websocket(url)
    answer = await client.login(make_token(TENANT, account, SECRET), device=device, timeout=15)
    assert answer.status == Status.SUCCESS, answer
    return client


async def call(client: RawClient, command: str, body: object, dest: str = "") -> LogicPacket:
    return await client.response(client.request(command, body, dest=dest), timeout=15)


async def subscribe(client: RawClient, *accounts: str) -> pb.PresenceSubscribeResp:
    answer = await call(
        client, Command.PRESENCE_SUBSCRIBE, pb.PresenceSubscribeReq(accounts=accounts)
    )
    assert answer.status == Status.SUCCESS, answer
    return answer.parse_body(pb.PresenceSubscribeResp)


async def presence_push(client: RawClient) -> pb.PresenceNotify:
    push = await client.push(Command.PRESENCE_SUBSCRIBE, timeout=15)
    assert push.flag == Flag.PUSH
    return push.parse_body(pb.PresenceNotify)


async def no_push(client: RawClient, command: str, wait: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        await client.push(command, timeout=wait)


async def test_presence_on_first_login_and_last_logout_only(topology: Topology) -> None:
    watched = owned_by("logic-2", "bob")
    watcher = await online(topology.ws_urls[0], owned_by("logic-1", "ann"))
    answer = await subscribe(watcher, watched)
    assert [(s.account, s.online) for s in answer.states] == [(watched, False)]
    assert answer.subscriptions == 1

    phone = await online(topology.ws_urls[1], watched, device="phone")
    came = await presence_push(watcher)
    assert (came.account, came.online) == (watched, True)
    assert came.at > 0

    # A second device coming and going, and a kickout on one device, change nothing.
    laptop = await online(topology.ws_urls[0], watched, device="laptop")
    laptop.close()
    phone_again = await online(topology.ws_urls[1], watched, device="phone")
    assert (await phone.closed(timeout=15))[0] == 4002  # kicked out
    await no_push(watcher, Command.PRESENCE_SUBSCRIBE)

    # The last device's explicit logout: offline.
    assert (await call(phone_again, Command.LOGIN_SIGNOUT, b"")).status == Status.SUCCESS
    went = await presence_push(watcher)
    assert (went.account, went.online) == (watched, False)

    # A resubscribe answers the truth; the first login after is pushed again, and a
    # disconnect (no signout sent by the client) of the last device is "offline".
    assert [s.online for s in (await subscribe(watcher, watched)).states] == [False]
    again = await online(topology.ws_urls[0], watched)
    assert (await presence_push(watcher)).online is True
    again.close()
    assert (await presence_push(watcher)).online is False
    watcher.close()


async def test_unsubscribe_stops_pushes(topology: Topology) -> None:
    watched = owned_by("logic-1", "carl")
    watcher = await online(topology.ws_urls[1], owned_by("logic-2", "dora"))
    await subscribe(watcher, watched, owned_by("logic-1", "x"))
    unsub = await call(
        watcher, Command.PRESENCE_UNSUBSCRIBE, pb.PresenceSubscribeReq(accounts=[watched])
    )
    assert unsub.status == Status.SUCCESS
    assert unsub.parse_body(pb.PresenceSubscribeResp).subscriptions == 1
    other = await online(topology.ws_urls[0], watched)
    await no_push(watcher, Command.PRESENCE_SUBSCRIBE)
    other.close()
    watcher.close()


async def test_subscriptions_are_bounded_and_go_with_the_connection(
    topology: Topology, redis_url_module: str
) -> None:
    account = owned_by("logic-1", "eve")
    watcher = await online(topology.ws_urls[0], account)
    many = [f"acct-{i}" for i in range(MAX_WATCHES_PER_CONNECTION)]
    assert (await subscribe(watcher, *many)).subscriptions == MAX_WATCHES_PER_CONNECTION
    beyond = await call(
        watcher, Command.PRESENCE_SUBSCRIBE, pb.PresenceSubscribeReq(accounts=["one-more"])
    )
    assert beyond.status == Status.TOO_LARGE
    assert "at most 200" in beyond.parse_body(pb.ErrorResp).message
    # Re-subscribing to followed accounts is no new subscription.
    assert (await subscribe(watcher, *many[:10])).subscriptions == MAX_WATCHES_PER_CONNECTION
    bad = await call(watcher, Command.PRESENCE_SUBSCRIBE, pb.PresenceSubscribeReq(accounts=[]))
    assert bad.status == Status.INVALID_PACKET_BODY

    redis = Redis.from_url(redis_url_module)
    try:
        followers = f"{PREFIX}:wby:{{{escape(TENANT)}:{escape(many[0])}}}"
        assert await redis.hlen(followers) == 1
        watcher.close()
        # The disconnect's signout (another process) drops both copies: poll for it.
        for _ in range(300):
            if not await redis.hlen(followers):
                break
            await anyio.sleep(0.05)
        assert await redis.hlen(followers) == 0
        assert await redis.keys(f"{PREFIX}:wch:*") == []
    finally:
        await redis.aclose()


def _stored_rows(mysql_url: str) -> tuple[int, int]:
    parts = urlsplit(mysql_url)
    conn = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/"),
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM messages WHERE tenant = %s", (TENANT,))
            (messages,) = cursor.fetchone() or (0,)
            cursor.execute("SELECT COUNT(*) FROM inbox WHERE tenant = %s", (TENANT,))
            (inbox,) = cursor.fetchone() or (0,)
        return int(messages), int(inbox)
    finally:
        conn.close()


async def test_typing_reaches_the_peer_is_never_stored_and_is_rate_limited(
    topology: Topology, mysql_url: str
) -> None:
    typer_name, peer_name = owned_by("logic-1", "tom"), owned_by("logic-2", "pam")
    typer = await online(topology.ws_urls[0], typer_name)
    peer = await online(topology.ws_urls[1], peer_name)
    before = _stored_rows(mysql_url)

    answer = await call(typer, Command.CHAT_TYPING, pb.TypingReq(peer=peer_name))
    assert answer.status == Status.SUCCESS, answer
    push = await peer.push(Command.CHAT_TYPING, timeout=15)
    notify = push.parse_body(pb.TypingNotify)
    assert (notify.account, notify.group, notify.stopped) == (typer_name, "", False)

    # A second indicator within the interval is refused (429) and not forwarded.
    again = await call(typer, Command.CHAT_TYPING, pb.TypingReq(peer=peer_name))
    assert again.status == Status.RATE_LIMITED
    await no_push(peer, Command.CHAT_TYPING, wait=0.5)
    # Another conversation has its own allowance.
    other = await call(typer, Command.CHAT_TYPING, pb.TypingReq(peer="someone-else"))
    assert other.status == Status.SUCCESS

    # Nothing stored, and nothing to sync.
    assert _stored_rows(mysql_url) == before
    index = await call(peer, Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    assert list(index.parse_body(pb.MessageIndexResp).indexes) == []

    invalid = await call(typer, Command.CHAT_TYPING, pb.TypingReq(peer="a", group="g"))
    assert invalid.status == Status.INVALID_PACKET_BODY
    typer.close()
    peer.close()


async def test_group_typing_only_for_members(topology: Topology) -> None:
    owner_name, member_name = owned_by("logic-1", "gus"), owned_by("logic-2", "mia")
    outsider_name = owned_by("logic-2", "out")
    owner = await online(topology.ws_urls[0], owner_name)
    member = await online(topology.ws_urls[1], member_name)
    outsider = await online(topology.ws_urls[1], outsider_name)
    created = await call(
        owner,
        Command.CHAT_GROUP_CREATE,
        pb.GroupCreateReq(name="typists", members=[member_name]),
    )
    assert created.status == Status.SUCCESS, created
    group = created.parse_body(pb.GroupCreateResp).group_id

    refused = await call(outsider, Command.CHAT_TYPING, pb.TypingReq(group=group))
    assert refused.status == Status.FORBIDDEN
    unknown = await call(outsider, Command.CHAT_TYPING, pb.TypingReq(group="no-such-group"))
    assert unknown.status == Status.NOT_FOUND

    assert (await call(owner, Command.CHAT_TYPING, pb.TypingReq(group=group))).status == 0
    notify = (await member.push(Command.CHAT_TYPING, timeout=15)).parse_body(pb.TypingNotify)
    assert (notify.account, notify.group) == (owner_name, group)
    await no_push(outsider, Command.CHAT_TYPING, wait=0.5)
    await no_push(owner, Command.CHAT_TYPING, wait=0.1)
    for client in (owner, member, outsider):
        client.close()
