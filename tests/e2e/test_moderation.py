"""The moderation hook and the per-tenant recall window, end to end: ``cirno up`` (real
control plane, gateway and logic node processes on SQLite), kim raw clients, and a real
HTTP hook on a loopback port answering allow, reject, replace, 500, garbage, too slowly,
or not at all.

Shown: a rejection reaches the sender with Forbidden and the hook's (bounded) reason,
and nothing is stored or pushed; a replacement is what is pushed, stored and synced, and
a resend of it is not moderated again; the hook's request verifies with the
``standardwebhooks`` library; fail-open delivers and fail-closed refuses (Unavailable)
when the hook is down, slow, failing or answering garbage; group messages are moderated
too; a tenant with a one-second recall window is refused a late recall while another
tenant's default window still allows it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from standardwebhooks import Webhook

from cirno.harness import Cluster, RawClient, free_port, make_token, run_cluster
from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.logic.moderation.hook import MAX_REASON_CHARS
from data_plane.wire import Command, LogicPacket, Status, pb
from tests.http_receiver import HttpReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SECRET = "moderation-tenant-secret-0123456789-abc"
REFRESH_S = 0.5
"""``run_cluster``'s tenant refresh interval: how soon the logic node hears of a hook."""
RECALL_WINDOW_S = 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with run_cluster(tmp_path_factory.mktemp("moderation")) as running:
        yield running


_CLIENTS: list[RawClient] = []
"""The clients a test logged in, held until its end (then closed)."""


@pytest.fixture(autouse=True)
async def close_logged_in() -> AsyncIterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()
    await anyio.sleep(0.05)


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


def verdict(**answer: object) -> Any:
    """An ``answer_body`` that always gives this verdict."""
    content = json.dumps(answer).encode()
    return lambda request: content


def new_tenant(cluster: Cluster, **fields: object) -> str:
    tenant = f"mod{uuid.uuid4().hex[:8]}"
    with cluster.admin() as admin:
        answer = admin.post(
            "/v1/tenants", json={"id": tenant, "name": tenant, "secret": SECRET, **fields}
        )
    assert answer.status_code == 201, answer.text
    return tenant


async def set_hook(
    cluster: Cluster, tenant: str, url: str, *, fail_open: bool = True, deadline_ms: int = 500
) -> str:
    """Configure the tenant's hook, wait until the logic node has it; its secret."""
    with cluster.admin() as admin:
        answer = admin.put(
            f"/v1/tenants/{tenant}/moderation",
            json={"url": url, "fail_open": fail_open, "deadline_ms": deadline_ms},
        )
    assert answer.status_code == 200, answer.text
    await anyio.sleep(REFRESH_S * 4)
    secret: str = answer.json()["secret"]
    return secret


async def login(cluster: Cluster, tenant: str, account: str) -> RawClient:
    client = await RawClient.websocket(cluster.ws_url)
    _CLIENTS.append(client)
    answer = await client.login(make_token(tenant, account, SECRET), device="d1")
    assert answer.status == Status.SUCCESS, answer
    return client


async def send(
    client: RawClient, command: str, to: str, body: str, client_msg_id: str = ""
) -> LogicPacket:
    req = pb.MessageReq(type=1, body=body, client_msg_id=client_msg_id or uuid.uuid4().hex)
    return await client.response(client.request(command, req, dest=to), timeout=10)


def reason(answer: LogicPacket) -> str:
    return answer.parse_body(pb.ErrorResp).message


async def synced_bodies(client: RawClient) -> list[str]:
    """Every body in the client's inbox, oldest first (``chat.offline.*``)."""
    seq = client.request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    index = (await client.response(seq)).parse_body(pb.MessageIndexResp)
    ids = [i.message_id for i in index.indexes]
    if not ids:
        return []
    seq = client.request(Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=ids))
    contents = (await client.response(seq)).parse_body(pb.MessageContentResp)
    return [c.body for c in contents.contents]


async def test_a_rejection_reaches_the_sender_and_nothing_is_stored_or_pushed(
    cluster: Cluster, hook: HttpReceiver
) -> None:
    tenant = new_tenant(cluster)
    secret = await set_hook(cluster, tenant, hook.url + "/moderate")
    alice, bob = await login(cluster, tenant, "alice"), await login(cluster, tenant, "bob")

    hook.answer_body = verdict(action="reject", reason="no spam please " + "x" * 1000)
    refused = await send(alice, Command.CHAT_USER_TALK, "bob", "buy now")
    assert refused.status == Status.FORBIDDEN
    assert (
        reason(refused)
        == "rejected by moderation: " + ("no spam please " + "x" * 1000)[:MAX_REASON_CHARS]
    )

    # The hook's request: signed (Standard Webhooks), with the message and its parties.
    (request,) = hook.requests()
    assert request.path == "/moderate"
    assert request.headers["webhook-id"].startswith("mod_")
    event = Webhook(secret).verify(request.body, request.headers)
    assert event["type"] == "message.moderate"
    assert (event["tenant"], event["sender"], event["receiver"], event["group"]) == (
        tenant,
        "alice",
        "bob",
        "",
    )
    assert event["message"]["body"] == "buy now"

    hook.answer_body = verdict(action="allow")
    allowed = await send(alice, Command.CHAT_USER_TALK, "bob", "hello bob")
    assert allowed.status == Status.SUCCESS
    push = (await bob.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert push.body == "hello bob"  # the first push bob gets: the rejected one had none
    assert await synced_bodies(bob) == ["hello bob"]
    assert await synced_bodies(alice) == ["hello bob"]


async def test_a_replacement_is_stored_pushed_and_synced_and_a_resend_keeps_it(
    cluster: Cluster, hook: HttpReceiver
) -> None:
    tenant = new_tenant(cluster)
    await set_hook(cluster, tenant, hook.url)
    alice, bob = await login(cluster, tenant, "alice"), await login(cluster, tenant, "bob")

    hook.answer_body = verdict(action="replace", body="you are ***")
    first = await send(alice, Command.CHAT_USER_TALK, "bob", "you are dumb", "cmid-1")
    assert first.status == Status.SUCCESS
    stored = first.parse_body(pb.MessageResp)
    push = (await bob.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert (push.messageId, push.body) == (stored.messageId, "you are ***")
    assert await synced_bodies(bob) == ["you are ***"]

    # A resend (its answer was lost, say) is not moderated again: the hook, which would
    # now reject it, is not asked, and the stored body stays the first verdict's.
    hook.answer_body = verdict(action="reject", reason="changed my mind")
    again = await send(alice, Command.CHAT_USER_TALK, "bob", "you are dumb", "cmid-1")
    assert again.status == Status.SUCCESS
    assert again.parse_body(pb.MessageResp).messageId == stored.messageId
    assert len(hook.requests()) == 1
    assert await synced_bodies(bob) == ["you are ***"]


async def test_group_messages_are_moderated(cluster: Cluster, hook: HttpReceiver) -> None:
    tenant = new_tenant(cluster)
    await set_hook(cluster, tenant, hook.url)
    alice, bob = await login(cluster, tenant, "alice"), await login(cluster, tenant, "bob")
    seq = alice.request(Command.CHAT_GROUP_CREATE, pb.GroupCreateReq(name="g", members=["bob"]))
    group = (await alice.response(seq)).parse_body(pb.GroupCreateResp).group_id

    hook.answer_body = verdict(action="reject", reason="off topic")
    refused = await send(alice, Command.CHAT_GROUP_TALK, group, "cats")
    assert (refused.status, reason(refused)) == (
        Status.FORBIDDEN,
        "rejected by moderation: off topic",
    )
    assert hook.requests()[0].json()["group"] == group

    hook.answer_body = verdict(action="replace", body="dogs")
    assert (await send(alice, Command.CHAT_GROUP_TALK, group, "cats")).status == Status.SUCCESS
    push = (await bob.push(Command.CHAT_GROUP_TALK)).parse_body(pb.MessagePush)
    assert (push.group, push.body) == (group, "dogs")
    assert await synced_bodies(bob) == ["dogs"]


@pytest.mark.parametrize("failure", ["down", "slow", "http 500", "garbage"])
async def test_fail_open_delivers_and_fail_closed_refuses(
    cluster: Cluster, hook: HttpReceiver, failure: str
) -> None:
    url = hook.url
    if failure == "down":
        url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    elif failure == "slow":
        hook.delay = 1.0  # past the 200 ms deadline
    elif failure == "http 500":
        hook.answer = lambda request: 500
        hook.answer_body = verdict(action="allow")
    else:
        hook.answer_body = lambda request: b"<html>not a verdict</html>"
    open_tenant, closed_tenant = new_tenant(cluster), new_tenant(cluster)
    await set_hook(cluster, open_tenant, url, fail_open=True, deadline_ms=200)
    await set_hook(cluster, closed_tenant, url, fail_open=False, deadline_ms=200)

    sender, receiver = (
        await login(cluster, open_tenant, "alice"),
        await login(cluster, open_tenant, "bob"),
    )
    with anyio.fail_after(5):  # the deadline bounds the wait: no 1 s hook
        delivered = await send(sender, Command.CHAT_USER_TALK, "bob", "through")
    assert delivered.status == Status.SUCCESS
    assert (await receiver.push(Command.CHAT_USER_TALK)).parse_body(
        pb.MessagePush
    ).body == "through"

    sender = await login(cluster, closed_tenant, "alice")
    refused = await send(sender, Command.CHAT_USER_TALK, "bob", "blocked")
    assert refused.status == Status.UNAVAILABLE
    assert "moderation service is unavailable" in reason(refused)
    receiver = await login(cluster, closed_tenant, "bob")
    assert await synced_bodies(receiver) == []
    if failure != "down":
        assert hook.requests(), "the hook was asked"


def metric(cluster: Cluster, name: str, result: str) -> float:
    text = httpx.get(cluster.metrics_urls["logic"], timeout=5).text
    line = f'{name}{{result="{result}"}} ' if result else f"{name} "
    values = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)]
    return values[0] if values else 0.0


async def test_moderation_is_counted(cluster: Cluster, hook: HttpReceiver) -> None:
    tenant = new_tenant(cluster)
    await set_hook(cluster, tenant, hook.url)
    alice = await login(cluster, tenant, "alice")
    before = {
        r: metric(cluster, "cirno_moderation_checks_total", r)
        for r in ("allowed", "rejected", "rewritten")
    }
    for answer in ({"action": "allow"}, {"action": "reject"}, {"action": "replace", "body": "b"}):
        hook.answer_body = verdict(**answer)
        await send(alice, Command.CHAT_USER_TALK, "bob", "m")
    for result in ("allowed", "rejected", "rewritten"):
        assert metric(cluster, "cirno_moderation_checks_total", result) == before[result] + 1
    assert metric(cluster, "cirno_moderation_seconds_count", "") >= 3


async def test_the_recall_window_is_per_tenant(cluster: Cluster) -> None:
    short = new_tenant(cluster, recall_window_s=RECALL_WINDOW_S)
    default = new_tenant(cluster)  # the logic node's default: two minutes
    await anyio.sleep(REFRESH_S * 4)
    late: list[tuple[RawClient, int]] = []
    for tenant in (short, default):
        sender = await login(cluster, tenant, "alice")
        answer = await send(sender, Command.CHAT_USER_TALK, "bob", "oops")
        late.append((sender, answer.parse_body(pb.MessageResp).messageId))
    await anyio.sleep(RECALL_WINDOW_S + 0.3)  # a real process's clock: wait the window out
    (short_sender, short_id), (default_sender, default_id) = late
    refused = await short_sender.response(
        short_sender.request(Command.CHAT_RECALL, pb.RecallReq(message_id=short_id))
    )
    assert refused.status == Status.EXPIRED
    recalled = await default_sender.response(
        default_sender.request(Command.CHAT_RECALL, pb.RecallReq(message_id=default_id))
    )
    assert recalled.status == Status.SUCCESS


async def test_server_api_sends_are_moderated_like_a_clients(
    cluster: Cluster, hook: HttpReceiver
) -> None:
    """``POST /v1/tenants/{id}/messages`` runs the client's send path, hook included: a
    rejection is the REST answer 403 with the hook's reason, a replacement is stored."""
    tenant = new_tenant(cluster)
    await set_hook(cluster, tenant, hook.url)
    bob = await login(cluster, tenant, "bob")
    url = f"/v1/tenants/{tenant}/messages"

    hook.answer_body = verdict(action="reject", reason="no ads")
    with cluster.admin() as admin:
        refused = admin.post(url, json={"to": "bob", "body": "buy now", "client_msg_id": "s1"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "rejected by moderation: no ads"
    asked = hook.requests()[0].json()
    assert (asked["sender"], asked["message"]["body"]) == (SYSTEM_SENDER, "buy now")

    hook.answer_body = verdict(action="replace", body="[removed]")
    with cluster.admin() as admin:
        sent = admin.post(url, json={"to": "bob", "body": "buy now", "client_msg_id": "s2"})
    assert sent.status_code == 200, sent.text
    push = (await bob.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert (push.messageId, push.body) == (sent.json()["message_id"], "[removed]")
    assert await synced_bodies(bob) == ["[removed]"]
