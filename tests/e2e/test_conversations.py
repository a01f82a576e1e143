"""Conversations end to end over real processes: unread counts on every device, read
receipts, history paging, recall and delete, group read counts.

Runs twice: on the SQLite all-in-one (``cirno up``) and on a MySQL + Redis topology
(control plane, two logic nodes, one gateway, each its own process). The recall window
is set short (``CIRNO_RECALL_WINDOW_SECONDS``) so a late recall is met after a second.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from cirno.harness import RawClient, make_token, run_cluster, run_topology
from data_plane.wire import Command, LogicPacket, Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TENANT = "convo"
SECRET = "convo-secret-0123456789-abcdefghijklm"
RECALL_WINDOW_S = 1.0
USER, GROUP = 0, 1


@dataclass(frozen=True)
class Site:
    """Where the clients connect."""

    tcp_addr: tuple[str, int]


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("mysql", marks=[pytest.mark.mysql, pytest.mark.redis])],
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    window = {
        "CIRNO_RECALL_WINDOW_SECONDS": str(RECALL_WINDOW_S),
        # The history test pipelines 1,000 sends: above the gateway's default request
        # rates, which would close the connection (4008) - not what it tests.
        "CIRNO_COMMANDS_PER_SECOND": "100000",
        "CIRNO_ACCOUNT_COMMANDS_PER_SECOND": "100000",
    }
    tmp = Path(tmp_path_factory.mktemp(f"convo-{request.param}"))
    if request.param == "sqlite":
        with run_cluster(tmp, **window) as cluster:
            cluster.create_tenant(TENANT, SECRET)
            yield Site(cluster.tcp_addr)
        return
    mysql_url: str = request.getfixturevalue("mysql_url")
    redis_url: str = request.getfixturevalue("redis_url_module")
    with run_topology(
        tmp,
        database_url=mysql_url,
        session_url=redis_url,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=2,
        gateways=1,
        extra_env=window,
    ) as topology:
        topology.create_tenant(TENANT, SECRET)
        yield Site(topology.tcp_addrs[0])


_CLIENTS: list[RawClient] = []
"""The clients a test opened: held until its end (``RawClient.opened`` only holds them
weakly, so a client a test did not close would be collected with its socket open)."""


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Close every client the test opened, and let the loop finish closing them."""
    yield
    for client in _CLIENTS:
        client.close()
    _CLIENTS.clear()
    await anyio.sleep(0.05)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def online(site: Site, account: str, device: str = "") -> RawClient:
    client = await RawClient.tcp(site.tcp_addr)
    _CLIENTS.append(client)
    answer = await client.login(make_token(TENANT, account, SECRET), device=device, timeout=15)
    assert answer.status == Status.SUCCESS, answer
    return client


async def call(client: RawClient, command: str, body: object, dest: str = "") -> LogicPacket:
    seq = client.request(command, body, dest=dest)
    return await client.response(seq, timeout=15)


async def ok(client: RawClient, command: str, body: object, dest: str = "") -> LogicPacket:
    answer = await call(client, command, body, dest)
    assert answer.status == Status.SUCCESS, answer
    return answer


async def send(client: RawClient, to: str, text: str) -> int:
    answer = await ok(client, Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=text), to)
    return answer.parse_body(pb.MessageResp).messageId


async def conversations(client: RawClient) -> dict[str, pb.Conversation]:
    answer = await ok(client, Command.CHAT_CONVERSATION_LIST, pb.ConversationListReq(limit=100))
    return {c.peer: c for c in answer.parse_body(pb.ConversationListResp).conversations}


async def history(
    client: RawClient, kind: int, peer: str, before: int = 0, limit: int = 100
) -> pb.HistoryResp:
    req = pb.HistoryReq(kind=kind, peer=peer, before_message_id=before, limit=limit)
    return (await ok(client, Command.CHAT_HISTORY, req)).parse_body(pb.HistoryResp)


async def test_unread_counts_rise_and_drop_on_every_device_with_a_receipt(site: Site) -> None:
    alice, bob = unique("alice"), unique("bob")
    sender = await online(site, alice)
    phone = await online(site, bob, "phone")
    laptop = await online(site, bob, "laptop")
    sent = [await send(sender, bob, f"hello {i}") for i in range(3)]
    for device in (phone, laptop):
        listed = (await conversations(device))[alice]
        assert (listed.unread, listed.last_message_id, listed.preview) == (3, sent[2], "hello 2")
        assert listed.last_sender == alice and listed.kind == USER
    read = await ok(phone, Command.CHAT_READ, pb.ReadReq(kind=USER, peer=alice, message_id=sent[1]))
    resp = read.parse_body(pb.ReadResp)
    assert resp.moved and resp.conversation.unread == 1
    notice = (await laptop.push(Command.CHAT_READ)).parse_body(pb.ReadNotify)
    assert (notice.reader, notice.peer, notice.message_id, notice.unread) == (
        bob,
        alice,
        sent[1],
        1,
    )
    receipt = (await sender.push(Command.CHAT_READ)).parse_body(pb.ReadNotify)
    assert (receipt.reader, receipt.kind, receipt.message_id) == (bob, USER, sent[1])
    assert (await conversations(laptop))[alice].unread == 1
    await send(sender, bob, "one more")
    assert (await conversations(laptop))[alice].unread == 2
    last = (await conversations(phone))[alice].last_message_id
    await ok(phone, Command.CHAT_READ, pb.ReadReq(kind=USER, peer=alice, message_id=last))
    assert (await laptop.push(Command.CHAT_READ)).parse_body(pb.ReadNotify).unread == 0
    for device in (phone, laptop):
        listed = (await conversations(device))[alice]
        assert (listed.unread, listed.read_message_id) == (0, last)
    # Reading backwards moves nothing and pushes nothing.
    back = await ok(phone, Command.CHAT_READ, pb.ReadReq(kind=USER, peer=alice, message_id=sent[0]))
    assert not back.parse_body(pb.ReadResp).moved
    # The sender's own messages are never unread for the sender.
    assert (await conversations(sender))[bob].unread == 0


async def test_history_pages_back_through_a_thousand_messages(site: Site) -> None:
    alice, bob = unique("alice"), unique("bob")
    sender = await online(site, alice)
    sent: list[int] = []
    for start in range(0, 1000, 100):  # pipelined, a hundred requests in flight
        seqs = [
            sender.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=f"m{i}"), dest=bob)
            for i in range(start, start + 100)
        ]
        for seq in seqs:
            answer = await sender.response(seq, timeout=30)
            assert answer.status == Status.SUCCESS, answer
            sent.append(answer.parse_body(pb.MessageResp).messageId)
    reader = await online(site, bob)
    seen: list[int] = []
    bodies: list[str] = []
    before = 0
    while True:
        page = await history(reader, USER, alice, before, 100)
        seen.extend(m.index.message_id for m in page.messages)
        bodies.extend(m.content.body for m in page.messages)
        if not page.has_more:
            break
        before = page.messages[-1].index.message_id
    assert seen == sent[::-1]
    assert bodies == [f"m{i}" for i in reversed(range(1000))]
    stranger = await online(site, unique("eve"))
    refused = await call(
        stranger,
        Command.CHAT_HISTORY,
        pb.HistoryReq(kind=USER, peer=alice, before_message_id=sent[5]),
    )
    assert refused.status == Status.NOT_FOUND


async def test_recall_leaves_a_tombstone_and_a_late_recall_is_refused(site: Site) -> None:
    alice, bob = unique("alice"), unique("bob")
    sender = await online(site, alice)
    receiver = await online(site, bob)
    kept = await send(sender, bob, "keep this")
    secret = await send(sender, bob, "the secret")
    refused = await call(receiver, Command.CHAT_RECALL, pb.RecallReq(message_id=secret))
    assert refused.status == Status.FORBIDDEN  # only the sender recalls
    recalled = await ok(sender, Command.CHAT_RECALL, pb.RecallReq(message_id=secret))
    assert recalled.parse_body(pb.RecallResp).recalled_at > 0
    notice = (await receiver.push(Command.CHAT_RECALL)).parse_body(pb.RecallNotify)
    assert (notice.message_id, notice.sender, notice.group) == (secret, alice, "")
    page = await history(receiver, USER, alice)
    assert [(m.index.message_id, m.content.body, m.content.recalled) for m in page.messages] == [
        (secret, "", True),
        (kept, "keep this", False),
    ]
    content = await ok(
        receiver, Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=[secret, kept])
    )
    [tombstone, intact] = content.parse_body(pb.MessageContentResp).contents
    assert (tombstone.body, tombstone.recalled) == ("", True)
    assert (intact.body, intact.recalled) == ("keep this", False)
    assert (await conversations(receiver))[alice].preview == ""
    late = await send(sender, bob, "too late to take back")
    await anyio.sleep(RECALL_WINDOW_S + 0.2)  # a real process's clock: wait the window out
    expired = await call(sender, Command.CHAT_RECALL, pb.RecallReq(message_id=late))
    assert expired.status == Status.EXPIRED, expired
    still = await history(receiver, USER, alice, limit=1)
    assert still.messages[0].content.body == "too late to take back"


async def test_delete_hides_a_message_for_the_caller_only(site: Site) -> None:
    alice, bob = unique("alice"), unique("bob")
    sender = await online(site, alice)
    first = await send(sender, bob, "first")
    second = await send(sender, bob, "second")
    receiver = await online(site, bob)
    await ok(receiver, Command.CHAT_DELETE, pb.DeleteReq(message_id=first))
    page = await history(receiver, USER, alice)
    assert [m.index.message_id for m in page.messages] == [second]
    index = await ok(receiver, Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    assert [e.message_id for e in index.parse_body(pb.MessageIndexResp).indexes] == [second]
    own = await history(sender, USER, bob)
    assert [m.index.message_id for m in own.messages] == [second, first]


async def test_group_conversations_and_read_counts(site: Site) -> None:
    owner, bob, carol = unique("owner"), unique("bob"), unique("carol")
    admin = await online(site, owner)
    created = await ok(
        admin, Command.CHAT_GROUP_CREATE, pb.GroupCreateReq(name="g", members=[bob, carol])
    )
    group = created.parse_body(pb.GroupCreateResp).group_id
    said = await ok(admin, Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body="hi all"), group)
    message_id = said.parse_body(pb.MessageResp).messageId
    member = await online(site, bob)
    listed = (await conversations(member))[group]
    assert (listed.kind, listed.unread, listed.last_sender) == (GROUP, 1, owner)
    count = await ok(admin, Command.CHAT_READ_COUNT, pb.ReadCountReq(message_id=message_id))
    assert (
        count.parse_body(pb.ReadCountResp).read,
        count.parse_body(pb.ReadCountResp).members,
    ) == (0, 2)
    await ok(member, Command.CHAT_READ, pb.ReadReq(kind=GROUP, peer=group, message_id=message_id))
    count = await ok(admin, Command.CHAT_READ_COUNT, pb.ReadCountReq(message_id=message_id))
    assert count.parse_body(pb.ReadCountResp).read == 1
    assert (await conversations(member))[group].unread == 0
    page = await history(member, GROUP, group)
    assert [m.content.body for m in page.messages] == ["hi all"]
    not_sender = await call(member, Command.CHAT_READ_COUNT, pb.ReadCountReq(message_id=message_id))
    assert not_sender.status == Status.FORBIDDEN
    # The group's owner recalls a member's message; the member is told who did.
    oops = await ok(member, Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body="oops"), group)
    oops_id = oops.parse_body(pb.MessageResp).messageId
    await ok(admin, Command.CHAT_RECALL, pb.RecallReq(message_id=oops_id))
    notice = (await member.push(Command.CHAT_RECALL)).parse_body(pb.RecallNotify)
    assert (notice.message_id, notice.sender, notice.recalled_by) == (oops_id, bob, owner)
