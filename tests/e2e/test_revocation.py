"""Revocation on live sessions, over real processes (issue 12 row 10; bans; keys).

A control plane, one logic node and two gateways (MariaDB, Redis). Gateway 1 and the
logic node refresh the tenant directory every ``REFRESH`` s; gateway 2 refreshes only
hourly, so it stands for a gateway that has not learnt of a change yet: there the logic
node must refuse the revoked user's requests.

The stated bound: a revocation closes the connections it affects within one directory
refresh plus one request to the control plane. The tests assert ``BOUND`` (the refresh
interval plus a margin for a loaded CI machine), polling with deadlines, never sleeping
a fixed time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from cirno.harness import ADMIN_TOKEN, RawClient, Topology, make_token, run_topology
from data_plane.transport.connection import CloseCode
from data_plane.wire import BasicCode, Command, LogicPacket, Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

REFRESH = 0.5
BOUND = REFRESH + 2.5
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FRESH, STALE = 0, 1


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("revocation")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=1,
        gateways=2,
        extra_env={"CIRNO_TENANT_REFRESH_INTERVAL": str(REFRESH)},
        gateway_env=[{}, {"CIRNO_TENANT_REFRESH_INTERVAL": "3600"}],
    ) as running:
        yield running


@pytest.fixture
async def http(topology: Topology) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=topology.control_url, timeout=10) as client:
        yield client


class Tenant:
    """A fresh tenant of the topology and logins of its users."""

    def __init__(self, topology: Topology, http: httpx.AsyncClient, body: dict[str, Any]):
        self.topology = topology
        self.http = http
        self.id: str = body["id"]
        self.secrets: dict[str, str] = {body["secret_kid"]: body["secret"]}
        self.api_key = {"X-Api-Key": body["api_key"]}
        self.clients: list[RawClient] = []
        """Every client made, kept until the test ends (a client collected before its
        transport finished closing warns)."""

    def token(self, account: str, kid: str = "k1") -> str:
        return make_token(self.id, account, self.secrets[kid], kid=kid)

    async def connect(self, gateway: int = FRESH, *, tcp: bool = False) -> RawClient:
        if tcp:
            client = await RawClient.tcp(self.topology.tcp_addrs[gateway])
        else:
            client = await RawClient.websocket(self.topology.ws_urls[gateway])
        self.clients.append(client)
        return client

    async def attempt(
        self, account: str, gateway: int = FRESH, *, kid: str = "k1", tcp: bool = False
    ) -> tuple[LogicPacket, RawClient]:
        client = await self.connect(gateway, tcp=tcp)
        device = "tcp" if tcp else "ws"  # one device per transport: no same-device kickout
        return await client.login(self.token(account, kid), device=device, timeout=15), client

    async def login(
        self, account: str, gateway: int = FRESH, *, kid: str = "k1", tcp: bool = False
    ) -> RawClient:
        answer, client = await self.attempt(account, gateway, kid=kid, tcp=tcp)
        assert answer.status == Status.SUCCESS, answer.parse_body(pb.ErrorResp).message
        return client

    async def login_eventually(self, account: str, *, kid: str = "k1") -> RawClient:
        """Retry a login until it succeeds (a key is known once the gateway refreshed)."""
        with anyio.fail_after(BOUND):
            while True:
                answer, client = await self.attempt(account, kid=kid)
                if answer.status == Status.SUCCESS:
                    return client
                client.close()
                await anyio.sleep(0.1)

    async def rotate(self, overlap_seconds: int) -> str:
        answer = await self.http.post(
            f"/v1/tenants/{self.id}/secrets",
            json={"overlap_seconds": overlap_seconds},
            headers=ADMIN,
        )
        assert answer.status_code == 201, answer.text
        self.secrets[answer.json()["kid"]] = answer.json()["secret"]
        kid: str = answer.json()["kid"]
        return kid


@pytest.fixture
async def tenant(topology: Topology, http: httpx.AsyncClient) -> AsyncIterator[Tenant]:
    tenant_id = f"r{uuid.uuid4().hex[:8]}"
    answer = await http.post(
        "/v1/tenants", json={"id": tenant_id, "name": tenant_id}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    made = Tenant(topology, http, answer.json())
    yield made
    for client in made.clients:
        client.close()
    await anyio.sleep(0.05)  # let the loop finish closing their transports


async def talk(client: RawClient, dest: str, body: str = "hi") -> LogicPacket:
    seq = client.request(
        Command.CHAT_USER_TALK,
        pb.MessageReq(type=1, body=body, client_msg_id=uuid.uuid4().hex),
        dest=dest,
    )
    return await client.response(seq, timeout=10)


async def talk_until(client: RawClient, dest: str, refused: bool) -> LogicPacket:
    """Send talks until one is refused (``refused``) or succeeds (not ``refused``), within
    the bound; returns that answer."""
    with anyio.fail_after(BOUND):
        while True:
            answer = await talk(client, dest)
            if (answer.status != Status.SUCCESS) == refused:
                return answer
            await anyio.sleep(0.1)


async def kicked(client: RawClient, started: float) -> tuple[str, tuple[int, str], float]:
    """The ``KickoutNotify`` reason, the close (code, reason), and the seconds from
    ``started`` until the close."""
    push = await client.push(Command.LOGIN_SIGNIN, timeout=BOUND + 5)
    notify = push.parse_body(pb.KickoutNotify)
    closed = await client.closed(timeout=5)
    return notify.reason, closed, time.monotonic() - started


async def still_served(client: RawClient) -> None:
    assert (await client.ping()).code == BasicCode.PONG


async def test_disabling_a_tenant_closes_its_connections(
    tenant: Tenant, http: httpx.AsyncClient
) -> None:
    """Issue 12 row 10: connected users of a disabled tenant are told, closed within the
    bound, refused at login, and may log in again once the tenant is enabled."""
    ws_user = await tenant.login("alice")
    tcp_user = await tenant.login("bob", tcp=True)
    on_stale = await tenant.login("carol", STALE)
    assert (await talk(ws_user, "bob")).status == Status.SUCCESS

    started = time.monotonic()
    answer = await http.patch(
        f"/v1/tenants/{tenant.id}", json={"status": "disabled"}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text

    for client in (ws_user, tcp_user):
        reason, (code, close_reason), elapsed = await kicked(client, started)
        assert reason == "tenant disabled"
        assert (code, close_reason) == (CloseCode.KICKED_OUT, "revoked: tenant disabled")
        assert elapsed < BOUND, elapsed
    # The gateway that has not learnt of it yet: its sends are refused by the logic node.
    refused = await talk_until(on_stale, "alice", refused=True)
    assert refused.status == Status.FORBIDDEN
    assert refused.parse_body(pb.ErrorResp).message == "tenant disabled"

    refusal, client = await tenant.attempt("alice")
    assert refusal.status == Status.UNAUTHORIZED
    assert "disabled" in refusal.parse_body(pb.ErrorResp).message
    assert (await client.closed())[0] == CloseCode.UNAUTHORIZED

    answer = await http.patch(f"/v1/tenants/{tenant.id}", json={"status": "active"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    client = await tenant.login_eventually("alice")
    assert (await talk(client, "bob")).status == Status.SUCCESS


async def test_a_ban_kicks_refuses_and_expires(tenant: Tenant, http: httpx.AsyncClient) -> None:
    banned = await tenant.login("mallory")
    second_device = await tenant.login("mallory", tcp=True)
    bystander = await tenant.login("bob")

    started = time.monotonic()
    answer = await http.post(
        f"/v1/tenants/{tenant.id}/accounts/mallory/ban",
        json={"duration_s": 4, "reason": "spam"},
        headers=tenant.api_key,
    )
    assert answer.status_code == 200, answer.text
    expires_at = answer.json()["expires_at"]

    for client in (banned, second_device):
        reason, (code, close_reason), elapsed = await kicked(client, started)
        assert reason.startswith("account banned until ") and reason.endswith(": spam")
        assert code == CloseCode.KICKED_OUT and close_reason == f"revoked: {reason}"
        assert elapsed < BOUND, elapsed
    await still_served(bystander)
    assert (await talk(bystander, "alice")).status == Status.SUCCESS

    refusal, client = await tenant.attempt("mallory")
    assert refusal.status == Status.FORBIDDEN
    assert refusal.parse_body(pb.ErrorResp).message.startswith("account banned until ")
    assert (await client.closed())[0] == CloseCode.POLICY_VIOLATION
    assert expires_at[:19] in refusal.parse_body(pb.ErrorResp).message

    # The ban lapses by itself: logins are admitted again once it expired.
    with anyio.fail_after(4 + BOUND):
        while True:
            login, client = await tenant.attempt("mallory")
            if login.status == Status.SUCCESS:
                break
            assert login.status == Status.FORBIDDEN
            client.close()
            await anyio.sleep(0.2)
    assert time.monotonic() - started > 3.5  # not before the ban's end (clock skew aside)
    assert (await talk(client, "bob")).status == Status.SUCCESS


async def test_a_lifted_ban_and_a_ban_unknown_to_the_gateway(
    tenant: Tenant, http: httpx.AsyncClient
) -> None:
    """A ban the gateway has not learnt yet still refuses the account's requests (the
    logic node knows it); lifting the ban lets the account in again."""
    on_stale = await tenant.login("mallory", STALE)
    path = f"/v1/tenants/{tenant.id}/accounts/mallory/ban"
    assert (await http.post(path, headers=tenant.api_key)).status_code == 200
    refused = await talk_until(on_stale, "bob", refused=True)
    assert refused.status == Status.FORBIDDEN
    assert refused.parse_body(pb.ErrorResp).message == "account banned"

    refusal, _ = await tenant.attempt("mallory")
    assert refusal.status == Status.FORBIDDEN

    assert (await http.delete(path, headers=tenant.api_key)).status_code == 204
    await talk_until(on_stale, "bob", refused=False)
    assert (await talk(await tenant.login_eventually("mallory"), "bob")).status == Status.SUCCESS


async def test_revoking_a_key_closes_only_its_sessions(
    tenant: Tenant, http: httpx.AsyncClient
) -> None:
    old_key = await tenant.login("alice", kid="k1")
    old_key_no_kid = await tenant.connect(tcp=True)
    token = make_token(tenant.id, "dave", tenant.secrets["k1"])  # no kid header: k1 verifies
    assert (await old_key_no_kid.login(token)).status == Status.SUCCESS
    k2 = await tenant.rotate(overlap_seconds=3600)
    new_key = await tenant.login_eventually("bob", kid=k2)

    started = time.monotonic()
    answer = await http.delete(f"/v1/tenants/{tenant.id}/secrets/k1", headers=ADMIN)
    assert answer.status_code == 204, answer.text
    for client in (old_key, old_key_no_kid):
        reason, (code, _), elapsed = await kicked(client, started)
        assert (reason, code) == ("signing key revoked (k1)", CloseCode.KICKED_OUT)
        assert elapsed < BOUND, elapsed
    await still_served(new_key)
    assert (await talk(new_key, "alice")).status == Status.SUCCESS
    refusal, _ = await tenant.attempt("alice", kid="k1")
    assert refusal.status == Status.UNAUTHORIZED

    # A key rotated out is revoked at the end of its overlap.
    k3 = await tenant.rotate(overlap_seconds=2)
    started = time.monotonic()
    newest = await tenant.login_eventually("carol", kid=k3)
    reason, (code, _), elapsed = await kicked(new_key, started)
    assert (reason, code) == (f"signing key revoked ({k2})", CloseCode.KICKED_OUT)
    assert 1.0 < elapsed < 2 + BOUND, elapsed
    await still_served(newest)
