"""Webhooks end to end: real processes (control plane, two logic nodes, a gateway, MySQL,
Redis) delivering to a real HTTP receiver on a loopback port.

Every event type is delivered and its Standard Webhooks signature verifies with the
``standardwebhooks`` library; deliveries are retried after a 500 and while the receiver
is down, stay in order, end failed (visible over REST) when attempts run out and can be
redelivered; and a logic node killed with SIGKILL in the middle of a stream of messages
loses none of their events (the outbox row commits with the message).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from cirno.harness import ADMIN_TOKEN, RawClient, Topology, make_token, run_topology
from data_plane.cluster.selection import rendezvous_pick
from data_plane.wire import Command, Status, pb
from tests.http_receiver import HttpReceiver, Received

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.anyio]

SECRET = "webhooks-tenant-secret-0123456789-abcdef"
REFRESH_S = 0.5
"""The logic nodes' directory refresh interval (``run_topology`` sets it)."""
MAX_ATTEMPTS = 4
OUTBOUND_ENV = {
    "CIRNO_WEBHOOK_POLL_INTERVAL": "0.05",
    "CIRNO_WEBHOOK_BACKOFF": "0.2",
    "CIRNO_WEBHOOK_BACKOFF_MAX": "0.5",
    "CIRNO_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "CIRNO_WEBHOOK_LEASE": "2",
    "CIRNO_WEBHOOK_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("webhooks")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"webhooks-{uuid.uuid4().hex[:8]}",
        logic_nodes=2,
        gateways=1,
        extra_env=OUTBOUND_ENV,
    ) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


def admin(topology: Topology) -> httpx.Client:
    return httpx.Client(
        base_url=topology.control_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10.0,
    )


def new_tenant(topology: Topology) -> str:
    tenant = f"wh{uuid.uuid4().hex[:8]}"
    topology.create_tenant(tenant, SECRET)
    return tenant


async def create_endpoint(
    topology: Topology, tenant: str, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    """Create an endpoint and wait until the logic nodes have heard of it."""
    with admin(topology) as client:
        answer = client.post(
            f"/v1/tenants/{tenant}/webhooks", json={"url": url, "events": events or []}
        )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    assert created["secret"].startswith("whsec_")
    # The nodes poll /internal/v1/outbound every REFRESH_S; events before they know the
    # endpoint are (by design) not sent to it.
    await anyio.sleep(REFRESH_S * 4)
    return created


def deliveries(topology: Topology, tenant: str, endpoint: str) -> list[dict[str, Any]]:
    with admin(topology) as client:
        answer = client.get(f"/v1/tenants/{tenant}/webhooks/{endpoint}/deliveries?limit=100")
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def login(topology: Topology, tenant: str, account: str, device: str = "d1") -> RawClient:
    client = await RawClient.websocket(topology.ws_urls[0])
    answer = await client.login(make_token(tenant, account, SECRET), device=device, timeout=20)
    assert answer.status == Status.SUCCESS, answer
    return client


async def talk(client: RawClient, to: str, body: str) -> pb.MessageResp:
    """One 1:1 send, resent with the same client message id until a node answers it."""
    req = pb.MessageReq(type=1, body=body, client_msg_id=uuid.uuid4().hex)
    with anyio.fail_after(40):
        while True:
            answer = await client.response(
                client.request(Command.CHAT_USER_TALK, req, dest=to), timeout=20
            )
            if answer.status == Status.SUCCESS:
                return answer.parse_body(pb.MessageResp)
            await anyio.sleep(0.2)  # the gateway has not yet moved us off a dead node


def verified(secret: str, request: Received) -> dict[str, Any]:
    """The event, after ``standardwebhooks`` verified its signature (raises if not)."""
    event: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    assert request.headers["webhook-id"].startswith("evt_")
    return event


def message_ids(requests: list[Received]) -> list[str]:
    """Message ids of the ``message.created`` events answered 2xx, first copies only."""
    seen: list[str] = []
    for request in requests:
        event = request.json()
        wanted = request.status == 200 and event["type"] == "message.created"
        if wanted and event["data"]["message_id"] not in seen:
            seen.append(event["data"]["message_id"])
    return seen


async def test_every_event_is_delivered_signed_and_verifiable(
    topology: Topology, receiver: HttpReceiver
) -> None:
    tenant = new_tenant(topology)
    endpoint = await create_endpoint(topology, tenant, receiver.url + "/hook")
    with admin(topology) as client:
        test = client.post(f"/v1/tenants/{tenant}/webhooks/{endpoint['id']}/test")
    assert test.status_code == 202, test.text

    alice = await login(topology, tenant, "alice")
    bob = await login(topology, tenant, "bob")
    sent = await talk(alice, "bob", "hello bob")
    seq = alice.request(Command.CHAT_GROUP_CREATE, pb.GroupCreateReq(name="team", members=["bob"]))
    created = await alice.response(seq, timeout=20)
    group_id = created.parse_body(pb.GroupCreateResp).group_id
    join = await alice.response(
        alice.request(Command.CHAT_GROUP_JOIN, pb.GroupJoinReq(account="carol", group_id=group_id)),
        timeout=20,
    )
    assert join.status == Status.SUCCESS
    group_talk = await alice.response(
        alice.request(
            Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body="hi team"), dest=group_id
        ),
        timeout=20,
    )
    assert group_talk.status == Status.SUCCESS
    dismissed = await alice.response(
        alice.request(Command.CHAT_GROUP_DISMISS, pb.GroupDismissReq(group_id=group_id)),
        timeout=20,
    )
    assert dismissed.status == Status.SUCCESS, dismissed
    await alice.response(alice.request(Command.LOGIN_SIGNOUT), timeout=20)
    again = await login(topology, tenant, "bob")  # same device: the first bob is kicked out
    wanted = {
        "webhook.test",
        "login",
        "logout",
        "kickout",
        "message.created",
        "group.created",
        "group.members_changed",
        "group.dismissed",
    }
    found = await receiver.wait_for(lambda rs: wanted <= {r.json()["type"] for r in rs}, timeout=30)
    events = [verified(endpoint["secret"], request) for request in found]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event["data"])
    assert all(r.path == "/hook" for r in found)
    assert {d["account"] for d in by_type["login"]} >= {"alice", "bob"}
    assert any(d["account"] == "alice" for d in by_type["logout"])
    assert by_type["kickout"][0]["account"] == "bob"
    one_to_one = next(d for d in by_type["message.created"] if not d["group_id"])
    assert one_to_one["message_id"] == str(sent.messageId)
    assert (one_to_one["sender"], one_to_one["receiver"]) == ("alice", "bob")
    assert one_to_one["body"] == "hello bob"
    await receiver.wait_for(
        lambda rs: any(
            r.json()["type"] == "message.created" and r.json()["data"]["group_id"] == group_id
            for r in rs
        )
    )
    assert by_type["group.created"][0]["members"] == sorted(["alice", "bob"])
    assert by_type["group.members_changed"][0]["joined"] == ["carol"]
    assert by_type["group.dismissed"][0] == {"tenant": tenant, "group_id": group_id, "by": "alice"}
    # A tampered body does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(found[0].body + b" ", found[0].headers)
    history = deliveries(topology, tenant, endpoint["id"])
    assert history and all(d["status"] in ("delivered", "pending") for d in history)
    for raw in (alice, bob, again):
        raw.close()


async def test_retried_after_500_and_while_down_in_order(
    topology: Topology, receiver: HttpReceiver
) -> None:
    tenant = new_tenant(topology)
    endpoint = await create_endpoint(topology, tenant, receiver.url, ["message.created"])
    failures = {"left": 2}

    def answer(_: Received) -> int:
        if failures["left"] > 0:
            failures["left"] -= 1
            return 500
        return 200

    receiver.answer = answer
    alice = await login(topology, tenant, "alice")
    first = [await talk(alice, "bob", f"m{i}") for i in range(5)]
    await receiver.wait_for(lambda rs: len(message_ids(rs)) == 5)
    assert message_ids(receiver.requests()) == [str(r.messageId) for r in first]
    assert [r.status for r in receiver.requests()][:3] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests()[:3]}) == 1  # one event
    oldest = deliveries(topology, tenant, endpoint["id"])[-1]
    assert (oldest["status"], oldest["attempts"]) == ("delivered", 3)

    receiver.stop()  # connections refused from now on
    second = [await talk(alice, "bob", f"n{i}") for i in range(3)]
    with anyio.fail_after(20):
        while True:  # until an attempt has failed on the refused connection
            history = deliveries(topology, tenant, endpoint["id"])
            if any("Connect" in d["last_error"] for d in history):
                break
            await anyio.sleep(0.1)
    receiver.start()
    await receiver.wait_for(lambda rs: len(message_ids(rs)) == 8)
    assert message_ids(receiver.requests()) == [str(r.messageId) for r in first + second]
    alice.close()


async def test_a_failed_delivery_is_listed_and_can_be_redelivered(
    topology: Topology, receiver: HttpReceiver
) -> None:
    tenant = new_tenant(topology)
    endpoint = await create_endpoint(topology, tenant, receiver.url, ["message.created"])
    receiver.answer = lambda _: 503
    alice = await login(topology, tenant, "alice")
    await talk(alice, "bob", "doomed")
    with anyio.fail_after(30):
        while True:
            history = deliveries(topology, tenant, endpoint["id"])
            if history and history[0]["status"] == "failed":
                break
            await anyio.sleep(0.1)
    failed = history[0]
    assert failed["attempts"] == MAX_ATTEMPTS
    assert failed["last_status_code"] == 503 and "503" in failed["last_error"]
    assert len(receiver.requests(503)) == MAX_ATTEMPTS

    receiver.answer = lambda _: 200
    with admin(topology) as client:
        again = client.post(
            f"/v1/tenants/{tenant}/webhooks/{endpoint['id']}/deliveries/{failed['id']}/redeliver"
        )
    assert again.status_code == 202, again.text
    assert again.json()["event_id"] == failed["event_id"]
    delivered = await receiver.wait_for(lambda rs: bool([r for r in rs if r.status == 200]))
    assert delivered[-1].headers["webhook-id"] == failed["event_id"]
    alice.close()


def account_on(node: str, tenant: str, prefix: str) -> str:
    """A fresh account whose logic node (rendezvous hashing) is ``node``."""
    nodes = {"logic-1": 0, "logic-2": 0}
    while True:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        if rendezvous_pick(nodes, f"{tenant}:{name}") == node:
            return name


async def test_no_event_is_lost_when_a_logic_node_is_killed_mid_stream(
    topology: Topology, receiver: HttpReceiver
) -> None:
    # Runs last in this module: it leaves one logic node.
    tenant = new_tenant(topology)
    await create_endpoint(topology, tenant, receiver.url, ["message.created"])
    sender = await login(topology, tenant, account_on("logic-1", tenant, "sender"))
    answered: list[pb.MessageResp] = []
    for i in range(40):
        if i == 15:
            await anyio.to_thread.run_sync(topology.stop, "logic-1", signal.SIGKILL)
        answered.append(await talk(sender, "bob", f"s{i}"))
    expected = [str(r.messageId) for r in answered]
    await receiver.wait_for(lambda rs: set(expected) <= set(message_ids(rs)), timeout=60)
    got = message_ids(receiver.requests())
    assert set(got) == set(expected)  # nothing lost, nothing foreign
    assert got == expected  # and in order (first copies; at least once allows repeats)
    sender.close()
