"""The control plane's promises over real running processes: GeoIP smart routing to
heartbeating gateways, expiry, token minting, secret rotation, quotas and dedicated
tenant databases."""

from __future__ import annotations

import signal
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from cirno.harness import ADMIN_TOKEN, RawClient, Topology, make_token, run_topology
from data_plane.storage.messages import schema as message_schema
from data_plane.wire import Command, Status, pb
from tests.control_plane.geo import DE_V4, US_V4, write_mmdb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

NODE_TTL = 3


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    tmp = Path(tmp_path_factory.mktemp("control-e2e"))
    geoip = write_mmdb(tmp / "geo.mmdb")
    with run_topology(
        tmp,
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=1,
        gateways=3,
        extra_env={
            "CIRNO_GEOIP_DB": str(geoip),
            "CIRNO_NODE_TTL": str(NODE_TTL),
            "CIRNO_GATEWAY_CAPACITY": "10",
        },
        gateway_env=[
            {"CIRNO_REGION": "eu", "CIRNO_ZONE": "eu-1"},
            {"CIRNO_REGION": "na", "CIRNO_ZONE": "na-1"},
            {"CIRNO_REGION": "eu", "CIRNO_ZONE": "eu-1"},
        ],
    ) as running:
        yield running


@pytest.fixture
async def admin(topology: Topology) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=topology.control_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ) as client:
        yield client


async def new_tenant(admin: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    tenant_id = f"t{uuid.uuid4().hex[:8]}"
    answer = await admin.post("/v1/tenants", json={"id": tenant_id, "name": tenant_id, **fields})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def login_status(url: str, token: str) -> tuple[int, RawClient]:
    client = await RawClient.websocket(url)
    answer = await client.login(token, timeout=15)
    return answer.status, client


async def test_geoip_routing_to_region_and_least_loaded_gateway(
    topology: Topology, admin: httpx.AsyncClient
) -> None:
    for body in (
        {"id": "eu", "name": "Europe", "countries": ["DE"], "continents": ["EU"],
         "zones": [{"zone": "eu-1", "weight": 1}], "is_default": True},
        {"id": "na", "name": "North America", "countries": ["US"], "continents": ["NA"],
         "zones": [{"zone": "na-1", "weight": 1}]},
    ):  # fmt: skip
        answer = await admin.post("/v1/regions", json=body)
        assert answer.status_code == 201, answer.text
    tenant = await new_tenant(admin)
    minted = await admin.post(f"/v1/tenants/{tenant['id']}/tokens", json={"account": "roamer"})
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]

    # Load gateway-1 (eu) with 3 of its 10 slots, so gateway-3 (eu, empty) is preferred.
    tokens = [make_token(tenant["id"], f"load{i}", tenant["secret"]) for i in range(3)]
    loaders = [(await login_status(topology.ws_urls[0], t))[1] for t in tokens]

    async def route(ip: str) -> dict[str, Any]:
        answer = await admin.get(
            "/v1/route",
            params={"token": token, "ip": ip},
            headers={"X-Cirno-Admin-Token": ADMIN_TOKEN},
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    with anyio.fail_after(20):  # heartbeats carry the new load within a second or two
        while True:
            eu = await route(DE_V4)
            if [g["id"] for g in eu["gateways"]][:1] == ["gw-3"]:
                break
            await anyio.sleep(0.5)
    assert (eu["country"], eu["continent"], eu["region"]) == ("DE", "EU", "eu")
    assert [g["id"] for g in eu["gateways"]] == ["gw-3", "gw-1"]
    assert eu["gateways"][0]["ws_url"] == topology.ws_urls[2]
    na = await route(US_V4)
    assert (na["country"], na["region"]) == ("US", "na")
    assert [g["id"] for g in na["gateways"]] == ["gw-2"]
    assert (await route(DE_V4))["gateways"] == eu["gateways"], "a stable answer"

    # An expired gateway is dropped from the answers.
    topology.stop("gateway-3", signal.SIGKILL)
    with anyio.fail_after(NODE_TTL + 15):
        while True:
            if [g["id"] for g in (await route(DE_V4))["gateways"]] == ["gw-1"]:
                break
            await anyio.sleep(0.5)
    # The minted token logs in on a gateway the route named.
    status, client = await login_status(topology.ws_urls[0], token)
    assert status == Status.SUCCESS
    for c in [client, *loaders]:
        c.close()


async def test_minted_tokens_and_secret_rotation(
    topology: Topology, admin: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(admin)
    tid = tenant["id"]
    by_admin = (await admin.post(f"/v1/tenants/{tid}/tokens", json={"account": "ann"})).json()
    async with httpx.AsyncClient(base_url=topology.control_url, timeout=10) as backend:
        by_key = await backend.post(
            f"/v1/tenants/{tid}/tokens",
            json={"account": "ben"},
            headers={"Authorization": f"Bearer {tenant['api_key']}"},
        )
    assert by_key.status_code == 201, by_key.text
    url = topology.ws_urls[0]
    for token in (by_admin["token"], by_key.json()["token"]):
        status, client = await login_status(url, token)
        assert status == Status.SUCCESS
        client.close()

    rotated = await admin.post(f"/v1/tenants/{tid}/secrets", json={"overlap_seconds": 600})
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    fresh = (await admin.post(f"/v1/tenants/{tid}/tokens", json={"account": "cat"})).json()
    assert fresh["kid"] == new_kid
    with anyio.fail_after(20):  # the gateway learns the new key on its next poll
        while True:
            status, client = await login_status(url, fresh["token"])
            client.close()
            if status == Status.SUCCESS:
                break
            await anyio.sleep(0.3)
    status, client = await login_status(url, by_admin["token"])  # old key, in the overlap
    assert status == Status.SUCCESS
    client.close()

    revoked = await admin.delete(f"/v1/tenants/{tid}/secrets/{tenant['secret_kid']}")
    assert revoked.status_code == 204, revoked.text
    with anyio.fail_after(20):
        while True:
            status, client = await login_status(url, by_admin["token"])
            client.close()
            if status == Status.UNAUTHORIZED:
                break
            await anyio.sleep(0.3)


async def test_quotas_are_enforced_with_clear_statuses(
    topology: Topology, admin: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(admin, max_connections=1, messages_per_second=2)
    first_status, first = await login_status(
        topology.ws_urls[0], make_token(tenant["id"], "one", tenant["secret"])
    )
    assert first_status == Status.SUCCESS
    client = await RawClient.websocket(topology.ws_urls[0])
    answer = await client.login(make_token(tenant["id"], "two", tenant["secret"]), timeout=15)
    assert answer.status == Status.QUOTA_EXCEEDED
    assert "quota" in answer.parse_body(pb.ErrorResp).message
    statuses = []
    for i in range(4):  # a burst of 4 against 2 per second
        seq = first.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=f"{i}"), dest="x")
        statuses.append((await first.response(seq, timeout=15)).status)
    assert statuses[:2] == [Status.SUCCESS, Status.SUCCESS]
    assert Status.RATE_LIMITED in statuses[2:]
    first.close()


async def test_dedicated_tenant_messages_land_in_its_own_database(
    topology: Topology, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    own_db = tmp_path / "dedicated.db"
    tenant = await new_tenant(admin, isolation="dedicated", database_url=f"sqlite:///{own_db}")
    sender = (await login_status(
        topology.ws_urls[0], make_token(tenant["id"], "ded", tenant["secret"])
    ))[1]  # fmt: skip
    seq = sender.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="private"), dest="peer")
    answer = await sender.response(seq, timeout=30)
    assert answer.status == Status.SUCCESS, answer
    message_id = answer.parse_body(pb.MessageResp).messageId
    with sqlite3.connect(own_db) as db:
        rows = db.execute(
            "SELECT tenant, body FROM messages WHERE message_id = ?", (message_id,)
        ).fetchall()
        names = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert rows == [(tenant["id"], b"private")]
    # The message tables and their history only: none of the control plane's.
    assert names == set(message_schema.metadata.tables) | {"message_store_version"}
    sender.close()
