"""Offline push notifications end to end: real processes and a real local provider.

A receiver with no online device gets ONE notification for a burst (collapsed, with the
count) through the tenant's provider: FCM's HTTP v1 request format, checked field by
field by the local server standing in for ``fcm.googleapis.com``, or a generic HTTP
endpoint. Nothing is sent while the receiver is online, and a receiver who comes back
within the collapse window cancels what was pending. Tokens are registered by the
device (``push.register``) or by the tenant's backend (REST).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from cirno.chat import run
from cirno.harness import ADMIN_TOKEN, RawClient, Topology, make_token, run_topology
from cirno_sdk import Client
from data_plane.wire import Command, Status, pb
from tests.http_receiver import HttpReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.anyio]

SECRET = "push-tenant-secret-0123456789-abcdef"
REFRESH_S = 0.5
COLLAPSE_MS = 2000
"""Long enough for a burst (and for a receiver to come back) to fall in one window."""
QUIET_S = COLLAPSE_MS / 1000 + 2.0
"""How long "nothing more is sent" is watched: a window and the dispatcher's look."""


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("push")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"push-{uuid.uuid4().hex[:8]}",
        logic_nodes=1,
        gateways=1,
        extra_env={"CIRNO_WEBHOOK_POLL_INTERVAL": "0.05", "CIRNO_WEBHOOK_LEASE": "2"},
    ) as running:
        yield running


@pytest.fixture
def provider() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


def admin(topology: Topology) -> httpx.Client:
    return httpx.Client(
        base_url=topology.control_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10.0,
    )


async def new_tenant(topology: Topology, provider: dict[str, Any]) -> str:
    """A tenant with ``provider``, once the logic node has heard of it."""
    tenant = f"push{uuid.uuid4().hex[:8]}"
    topology.create_tenant(tenant, SECRET)
    with admin(topology) as client:
        answer = client.put(f"/v1/tenants/{tenant}/push-provider", json=provider)
    assert answer.status_code == 200, answer.text
    assert "auth_token" not in answer.json()
    await anyio.sleep(REFRESH_S * 4)  # the node polls /internal/v1/outbound every REFRESH_S
    return tenant


async def login(topology: Topology, tenant: str, account: str, device: str) -> RawClient:
    client = await RawClient.websocket(topology.ws_urls[0])
    answer = await client.login(make_token(tenant, account, SECRET), device=device, timeout=20)
    assert answer.status == Status.SUCCESS, answer
    return client


async def sign_out(client: RawClient) -> None:
    answer = await client.response(client.request(Command.LOGIN_SIGNOUT), timeout=20)
    assert answer.status == Status.SUCCESS
    client.close()


async def talk(client: RawClient, to: str, body: str) -> pb.MessageResp:
    answer = await client.response(
        client.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=body), dest=to),
        timeout=20,
    )
    assert answer.status == Status.SUCCESS, answer
    return answer.parse_body(pb.MessageResp)


async def test_an_offline_receiver_gets_one_collapsed_fcm_notification_per_burst(
    topology: Topology, provider: HttpReceiver
) -> None:
    tenant = await new_tenant(
        topology,
        {
            "kind": "fcm",
            "url": provider.url,
            "project_id": "proj-1",
            "auth_token": "ya29.test-access-token",
            "collapse_ms": COLLAPSE_MS,
        },
    )
    bob = await login(topology, tenant, "bob", "phone")
    registered = await bob.response(
        bob.request(
            Command.PUSH_REGISTER, pb.PushRegisterReq(token="fcm-token-bob", platform="android")
        ),
        timeout=20,
    )
    assert registered.status == Status.SUCCESS, registered
    await sign_out(bob)
    alice = await login(topology, tenant, "alice", "web")
    burst = [await talk(alice, "bob", f"message {i}") for i in range(5)]

    await provider.wait_for(lambda rs: len(rs) >= 1, timeout=20)
    await anyio.sleep(QUIET_S)
    (request,) = provider.requests()  # one notification for the whole burst
    assert request.path == "/v1/projects/proj-1/messages:send"
    assert request.headers["authorization"] == "Bearer ya29.test-access-token"
    assert request.headers["content-type"].startswith("application/json")
    message = request.json()["message"]
    assert message["token"] == "fcm-token-bob"
    assert message["notification"] == {"title": "alice", "body": "5 new messages"}
    data = message["data"]
    assert all(isinstance(value, str) for value in data.values())  # FCM's rule for data
    assert data["count"] == "5"
    assert data["message_id"] == str(burst[-1].messageId)
    assert (data["tenant"], data["account"], data["sender"]) == (tenant, "bob", "alice")

    # Online: nothing is notified.
    bob = await login(topology, tenant, "bob", "phone")
    for i in range(3):
        await talk(alice, "bob", f"while online {i}")
    await anyio.sleep(QUIET_S)
    assert len(provider.requests()) == 1

    # Offline again, then back within the window: the pending notification is cancelled.
    await sign_out(bob)
    await talk(alice, "bob", "you will see this when you are back")
    bob = await login(topology, tenant, "bob", "phone")
    await anyio.sleep(QUIET_S)
    assert len(provider.requests()) == 1
    bob.close()
    alice.close()


async def test_a_token_registered_over_rest_gets_generic_http_notifications(
    topology: Topology, provider: HttpReceiver
) -> None:
    tenant = await new_tenant(
        topology, {"kind": "http", "url": provider.url + "/push", "collapse_ms": 200}
    )
    with admin(topology) as client:
        answer = client.post(
            f"/v1/tenants/{tenant}/accounts/carol/push-tokens",
            json={"device": "tablet", "token": "tok-carol", "platform": "ios"},
        )
        assert answer.status_code == 204, answer.text
    alice = await login(topology, tenant, "alice", "web")
    sent = await talk(alice, "carol", "hello carol")
    (request,) = await provider.wait_for(lambda rs: len(rs) >= 1, timeout=20)
    assert request.path == "/push"
    assert "authorization" not in request.headers
    body = request.json()
    assert (body["token"], body["device"], body["account"]) == ("tok-carol", "tablet", "carol")
    assert (body["title"], body["body"], body["count"]) == ("alice", "hello carol", "1")
    assert body["message_id"] == str(sent.messageId)

    with admin(topology) as client:
        gone = client.delete(f"/v1/tenants/{tenant}/accounts/carol/push-tokens?device=tablet")
        assert gone.status_code == 204, gone.text
        again = client.delete(f"/v1/tenants/{tenant}/accounts/carol/push-tokens?device=tablet")
        assert again.status_code == 404
    await talk(alice, "carol", "nobody is told about this one")
    await anyio.sleep(QUIET_S)
    assert len(provider.requests()) == 1
    alice.close()


async def test_the_sdk_and_cirno_chat_register_push_tokens(
    topology: Topology, provider: HttpReceiver
) -> None:
    tenant = await new_tenant(
        topology, {"kind": "http", "url": provider.url + "/push", "collapse_ms": 200}
    )
    url = topology.ws_urls[0]
    async with Client(url, make_token(tenant, "dave", SECRET), device="sdk-phone") as sdk:
        await sdk.register_push("sdk-token", "ios")
    async with Client(url, make_token(tenant, "erin", SECRET), device="terminal") as chat:

        async def lines() -> AsyncIterator[str]:
            yield "/push-register cli-token web"

        out = io.StringIO()
        assert await run(chat, lines(), out) == 0
        assert "push token registered" in out.getvalue()
    alice = await login(topology, tenant, "alice", "web")
    await talk(alice, "dave", "to dave")
    await talk(alice, "erin", "to erin")
    found = await provider.wait_for(lambda rs: len(rs) >= 2, timeout=20)
    tokens = {r.json()["account"]: r.json()["token"] for r in found}
    assert tokens == {"dave": "sdk-token", "erin": "cli-token"}
    alice.close()
