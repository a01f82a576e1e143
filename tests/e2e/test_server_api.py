"""The tenants' server API end to end: REST → control plane → logic node → kim clients.

``cirno up`` (SQLite, in-memory sessions) with two tenants with API keys; real raw kim
clients over the gateway. Every REST call goes through the control plane's link to the
logic node (``control_plane.logic_client``), which runs the client handlers' code.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest

from cirno.harness import ADMIN_TOKEN, Cluster, RawClient, make_token, run_cluster
from control_plane.settings import DEFAULT_MAX_BODY_BYTES
from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.cluster.protocol import HANDSHAKE_COMMAND, META_GATEWAY, META_SECRET
from data_plane.cluster.server_api import META_ROLE, ROLE_CONTROL, SEND, encode
from data_plane.transport.connection import CloseCode
from data_plane.wire import Command, LogicPacket, Meta, Status, pb
from tests.http_receiver import HttpReceiver, Received

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CLUSTER_SECRET = "server-api-cluster-secret-0123456789"
SECRETS = {
    "sapi": "sapi-secret-0123456789-abcdefghijklmn",
    "sapx": "sapx-secret-98765-zyxwvutsrqponmlkji",
}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with run_cluster(
        tmp_path_factory.mktemp("server_api"), CIRNO_CLUSTER_SECRET=CLUSTER_SECRET
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api_keys(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Each tenant's API-key header."""
    keys: dict[str, dict[str, str]] = {}
    with cluster.admin() as admin:
        for tenant, secret in SECRETS.items():
            answer = admin.post(
                "/v1/tenants", json={"id": tenant, "name": tenant, "secret": secret}
            )
            assert answer.status_code == 201, answer.text
            keys[tenant] = {"X-Api-Key": answer.json()["api_key"]}
    return keys


_KEPT: list[RawClient] = []
"""The test's clients, held until the test ends (a collected open client warns)."""


@pytest.fixture(autouse=True)
async def keep_clients() -> AsyncIterator[None]:
    yield
    for client in _KEPT:
        client.close()
    await anyio.sleep(0.05)  # let the loop finish closing their sockets
    _KEPT.clear()


@pytest.fixture
async def http(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.control_url, timeout=15) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def online(
    cluster: Cluster, account: str, *, device: str = "", kim: bool = True, tenant: str = "sapi"
) -> RawClient:
    """A signed-in client (a kim client by default: no client_version)."""
    client = await RawClient.websocket(cluster.ws_url)
    _KEPT.append(client)
    token = make_token(tenant, account, SECRETS[tenant])
    kwargs: dict[str, Any] = {"client_version": ""} if kim else {}
    answer = await client.login(token, device=device, **kwargs)
    assert answer.status == Status.SUCCESS, answer
    return client


async def send(
    http: httpx.AsyncClient,
    keys: dict[str, str],
    *,
    sender: str | None = None,
    expect: int = 200,
    **body: Any,
) -> dict[str, Any]:
    """POST a message (``sender``: its ``from``) and check the status."""
    if sender is not None:
        body["from"] = sender
    answer = await http.post("/v1/tenants/sapi/messages", json=body, headers=keys)
    assert answer.status_code == expect, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_send_reaches_online_and_offline_clients_once(
    cluster: Cluster, http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    keys = api_keys["sapi"]
    alice, carol = unique("alice"), unique("carol")
    client = await online(cluster, alice)
    first = await send(http, keys, to=alice, body="welcome", client_msg_id="m-1")
    push = (await client.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert push.messageId == first["message_id"]
    assert (push.sender, push.body) == (SYSTEM_SENDER, "welcome")
    again = await send(http, keys, to=alice, body="welcome", client_msg_id="m-1")
    assert again == first  # stored once: same id and time, nothing pushed
    later = await send(http, keys, to=alice, body="second", client_msg_id="m-2")
    push = (await client.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert (push.messageId, push.body) == (later["message_id"], "second")

    # As an account, to an offline one: its next sync has the message, once.
    sent = await send(http, keys, sender=alice, to=carol, body="hi", client_msg_id="c-1")
    await send(http, keys, sender=alice, to=carol, body="hi", client_msg_id="c-1")
    sender_push = (await client.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert sender_push.messageId == sent["message_id"]  # the sender's devices see it too
    receiver = await online(cluster, carol, kim=False)
    seq = receiver.request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    page = (await receiver.response(seq)).parse_body(pb.MessageIndexResp)
    assert [(e.message_id, e.accountB) for e in page.indexes] == [(sent["message_id"], alice)]


async def test_group_lifecycle_with_notifies_and_sends(
    cluster: Cluster, http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    keys = api_keys["sapi"]
    owner, bob, dan, outsider = (unique(p) for p in ("own", "bob", "dan", "out"))
    owner_c, bob_c, dan_c = [await online(cluster, a, kim=False) for a in (owner, bob, dan)]
    answer = await http.post(
        "/v1/tenants/sapi/groups",
        json={"owner": owner, "name": "team", "members": [bob]},
        headers=keys,
    )
    assert answer.status_code == 201, answer.text
    group = answer.json()["group_id"]
    for c in (owner_c, bob_c):
        notify = (await c.push(Command.CHAT_GROUP_CREATE)).parse_body(pb.GroupCreateNotify)
        assert notify.group_id == group and set(notify.members) == {owner, bob}

    answer = await http.post(
        f"/v1/tenants/sapi/groups/{group}/members", json={"accounts": [dan]}, headers=keys
    )
    assert answer.status_code == 204, answer.text
    for c in (owner_c, bob_c, dan_c):
        joined = (await c.push(Command.CHAT_GROUP_JOIN)).parse_body(pb.GroupJoinNotify)
        assert (joined.group_id, joined.account) == (group, dan)

    system = await send(http, keys, group=group, body="to all", client_msg_id=unique("g"))
    for c in (owner_c, bob_c, dan_c):
        push = (await c.push(Command.CHAT_GROUP_TALK)).parse_body(pb.MessagePush)
        assert (push.messageId, push.group, push.sender) == (
            system["message_id"],
            group,
            SYSTEM_SENDER,
        )
    assert system["seq"] == 1
    by_bob = await send(http, keys, sender=bob, group=group, body="me", client_msg_id="b")
    assert by_bob["seq"] == 2
    await send(http, keys, expect=404, sender=outsider, group=group, body="x", client_msg_id="o")

    answer = await http.request(
        "DELETE", f"/v1/tenants/sapi/groups/{group}/members", json={"accounts": [bob]}, headers=keys
    )
    assert answer.status_code == 204, answer.text
    quit_ = (await dan_c.push(Command.CHAT_GROUP_QUIT)).parse_body(pb.GroupQuitNotify)
    assert (quit_.group_id, quit_.account) == (group, bob)
    answer = await http.request(
        "DELETE",
        f"/v1/tenants/sapi/groups/{group}/members",
        json={"accounts": [owner]},
        headers=keys,
    )
    assert answer.status_code == 403, answer.text  # the owner stays: transfer or dismiss

    answer = await http.delete(f"/v1/tenants/sapi/groups/{group}", headers=keys)
    assert answer.status_code == 204, answer.text
    for c in (owner_c, dan_c):
        gone = (await c.push(Command.CHAT_GROUP_DISMISS)).parse_body(pb.GroupDismissNotify)
        assert (gone.group_id, gone.by) == (group, owner)
    assert (await http.delete(f"/v1/tenants/sapi/groups/{group}", headers=keys)).status_code == 404


async def test_presence_and_kick_of_live_sessions(
    cluster: Cluster, http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    keys = api_keys["sapi"]
    eve, nobody = unique("eve"), unique("nobody")
    phone = await online(cluster, eve, device="phone", kim=False)
    laptop = await online(cluster, eve, device="laptop", kim=False)
    answer = await http.get(
        "/v1/tenants/sapi/presence", params={"accounts": f"{eve},{nobody}"}, headers=keys
    )
    assert answer.status_code == 200, answer.text
    eve_p, nobody_p = answer.json()["accounts"]
    assert eve_p["online"] and {d["device"] for d in eve_p["devices"]} == {"phone", "laptop"}
    assert all(d["gateway"] for d in eve_p["devices"])
    assert nobody_p == {"account": nobody, "online": False, "devices": []}

    answer = await http.post(
        f"/v1/tenants/sapi/accounts/{eve}/kick",
        json={"device": "phone", "reason": "policy violation"},
        headers=keys,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"kicked": 1}
    notify = (await phone.push(Command.LOGIN_SIGNIN)).parse_body(pb.KickoutNotify)
    assert notify.reason == "policy violation"
    code, reason = await phone.closed()
    assert code == CloseCode.KICKED_OUT and "policy violation" in reason
    assert (await laptop.ping()) is not None  # the other device stays

    too_many = ",".join(f"u{i}" for i in range(501))
    answer = await http.get(
        "/v1/tenants/sapi/presence", params={"accounts": too_many}, headers=keys
    )
    assert answer.status_code == 422


async def test_history_pages_by_inbox_sequence_with_tombstones(
    cluster: Cluster, http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    keys = api_keys["sapi"]
    frank, gina = unique("frank"), unique("gina")
    sender = await online(cluster, frank, kim=False)
    ids = [
        (await send(http, keys, sender=frank, to=gina, body=f"n{i}", client_msg_id=f"h{i}"))[
            "message_id"
        ]
        for i in range(4)
    ]
    for _ in ids:
        await sender.push(Command.CHAT_USER_TALK)
    seq = sender.request(Command.CHAT_RECALL, pb.RecallReq(message_id=ids[1]))
    assert (await sender.response(seq)).status == Status.SUCCESS

    url = f"/v1/tenants/sapi/accounts/{gina}/messages"
    first = (await http.get(url, params={"limit": 3}, headers=keys)).json()
    assert [m["message_id"] for m in first["messages"]] == ids[:3]
    assert [m["seq"] for m in first["messages"]] == [1, 2, 3] and first["has_more"]
    assert first["messages"][1]["recalled"] and first["messages"][1]["body"] == ""
    assert (first["messages"][0]["direction"], first["messages"][0]["peer"]) == ("received", frank)
    rest = await http.get(url, params={"after_seq": first["next_after_seq"]}, headers=keys)
    assert [m["body"] for m in rest.json()["messages"]] == ["n3"]
    assert not rest.json()["has_more"]

    # A page larger than a client packet still comes whole (the control link's limit).
    big = unique("big")
    for i in range(3):
        await send(http, keys, to=big, body=str(i) * 30_000, client_msg_id=f"big{i}")
    page = await http.get(f"/v1/tenants/sapi/accounts/{big}/messages", headers=keys)
    assert page.status_code == 200, page.text
    assert [len(m["body"]) for m in page.json()["messages"]] == [30_000] * 3


async def test_credentials_are_checked_per_tenant(
    http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    body = {"to": "someone", "body": "x", "client_msg_id": "auth"}
    assert (await http.post("/v1/tenants/sapi/messages", json=body)).status_code == 401
    other = await http.post("/v1/tenants/sapi/messages", json=body, headers=api_keys["sapx"])
    assert other.status_code == 403
    unknown = await http.post("/v1/tenants/nosuchtenant/messages", json=body, headers=ADMIN)
    assert unknown.status_code == 404
    wrong = await http.get("/v1/tenants/sapx/presence?accounts=a", headers=api_keys["sapi"])
    assert wrong.status_code == 403
    assert (
        await http.post("/v1/tenants/sapi/messages", json=body, headers=ADMIN)
    ).status_code == 200


async def declared_too_large(cluster: Cluster, keys: dict[str, str]) -> bytes:
    """The status a send declaring a body one byte over the cap gets, before any of it
    is sent (a raw request: an HTTP client would race the server's early close)."""
    host, port = cluster.control_url.removeprefix("http://").split(":")
    head = (
        "POST /v1/tenants/sapi/messages HTTP/1.1\r\n"
        f"Host: {host}\r\nX-Api-Key: {keys['X-Api-Key']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {DEFAULT_MAX_BODY_BYTES + 1}\r\n\r\n"
    )
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(head.encode())
        with anyio.fail_after(10):
            answer = await stream.receive()
    return answer.split(b" ")[1]


async def test_bad_input_is_refused_and_nothing_breaks(
    cluster: Cluster, http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    keys = api_keys["sapi"]
    both = {"to": "a", "group": "g", "body": "x", "client_msg_id": "1"}
    await send(http, keys, expect=422, **both)
    await send(http, keys, expect=422, body="x", client_msg_id="1")  # neither
    await send(http, keys, expect=422, to="a b", body="x", client_msg_id="1")
    await send(
        http, keys, expect=413, to="a", body="é" * 60_000, client_msg_id="big"
    )  # push too big
    assert await declared_too_large(cluster, keys) == b"413"
    await send(http, keys, expect=404, group="nosuchgroup", body="x", client_msg_id="ng")
    hist = await http.get("/v1/tenants/sapi/accounts/a/messages?limit=201", headers=keys)
    assert hist.status_code == 422
    # Everything still works.
    hank = unique("hank")
    client = await online(cluster, hank)
    sent = await send(http, keys, to=hank, body="still here", client_msg_id="ok")
    push = (await client.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert push.messageId == sent["message_id"]


async def test_server_commands_are_refused_from_clients_and_gateway_links(
    cluster: Cluster,
) -> None:
    client = await online(cluster, unique("ivy"), kim=False)
    body = encode({"to": "victim", "body": "x", "client_msg_id": "forged"})
    seq = client.request(SEND, body)
    answer = await client.response(seq)
    assert answer.status == Status.NOT_IMPLEMENTED  # the gateway never forwards server.*

    link = await RawClient.tcp(cluster.logic_addr)
    _KEPT.append(link)
    hello = LogicPacket.request(
        HANDSHAKE_COMMAND, meta=(Meta(META_SECRET, CLUSTER_SECRET), Meta(META_GATEWAY, "gw-x"))
    )
    link.send_raw(hello.encode())
    assert (await link.next_packet()).status == Status.SUCCESS  # type: ignore[union-attr]
    forged = LogicPacket.request(
        SEND, body, sequence=7, meta=(Meta("tenant", "sapi"), Meta("account", "mallory"))
    )
    link.send_raw(forged.encode())
    answer = await link.response(7)
    assert answer.status == Status.FORBIDDEN  # only a control-role link may send them
    link.close()

    control = await RawClient.tcp(cluster.logic_addr)
    _KEPT.append(control)
    hello = hello.replace(meta=(*hello.meta, Meta(META_ROLE, ROLE_CONTROL)))
    control.send_raw(hello.encode())
    assert (await control.next_packet()).status == Status.SUCCESS  # type: ignore[union-attr]
    talk = LogicPacket.request(
        Command.CHAT_USER_TALK,
        pb.MessageReq(type=1, body="x"),
        sequence=8,
        dest="victim",
        meta=(Meta("tenant", "sapi"), Meta("account", "mallory")),
    )
    control.send_raw(talk.encode())
    assert (await control.response(8)).status == Status.FORBIDDEN  # server.* only there


async def test_server_api_events_reach_the_tenants_webhooks(
    cluster: Cluster, http: httpx.AsyncClient, api_keys: dict[str, dict[str, str]]
) -> None:
    """A server-API message writes the same ``message.created`` outbox row as a client's,
    and server-API group changes record the same group events (tenant ``sapx``)."""
    keys = api_keys["sapx"]
    receiver = HttpReceiver().start()
    try:
        with cluster.admin() as admin:
            answer = admin.post("/v1/tenants/sapx/webhooks", json={"url": receiver.url})
            assert answer.status_code == 201, answer.text

        def types(found: list[Received]) -> set[str]:
            return {r.json()["type"] for r in found}

        # Until the logic node has refreshed its endpoint list, events are not recorded.
        sent: list[int] = []
        with anyio.fail_after(30):
            while "message.created" not in types(receiver.requests()):
                body = {"to": "zed", "body": "ping", "client_msg_id": f"p{len(sent)}"}
                answer = await http.post("/v1/tenants/sapx/messages", json=body, headers=keys)
                sent.append(answer.json()["message_id"])
                await anyio.sleep(0.1)  # poll interval
        group = {"owner": "zed", "name": "hooks", "members": ["yan"]}
        answer = await http.post("/v1/tenants/sapx/groups", json=group, headers=keys)
        group_id = answer.json()["group_id"]
        assert (await http.delete(f"/v1/tenants/sapx/groups/{group_id}", headers=keys)).is_success
        await online(cluster, "zed", tenant="sapx")
        kick = {"reason": "bye now"}
        answer = await http.post("/v1/tenants/sapx/accounts/zed/kick", json=kick, headers=keys)
        assert answer.json() == {"kicked": 1}
        found = await receiver.wait_for(
            lambda rs: {"group.created", "group.dismissed", "kickout"} <= types(rs), timeout=30
        )
    finally:
        receiver.stop()
    created = [r.json()["data"] for r in found if r.json()["type"] == "message.created"]
    assert created[0]["sender"] == SYSTEM_SENDER and created[0]["receiver"] == "zed"
    assert int(created[0]["message_id"]) in sent
    groups = [r.json()["data"] for r in found if r.json()["type"].startswith("group.")]
    assert all(d["group_id"] == group_id for d in groups)
    kickout = next(r.json()["data"] for r in found if r.json()["type"] == "kickout")
    assert (kickout["account"], kickout["reason"]) == ("zed", "bye now")
