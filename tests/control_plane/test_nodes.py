"""The node registry: heartbeats, expiry, node-id leases, internal and admin listings."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlmodel import Session

from control_plane.db import make_engine
from control_plane.models import HeartbeatIn
from control_plane.registry import record_heartbeat
from control_plane.settings import DEFAULT_ID_LEASE_TTL
from data_plane.storage.urls import backend_of, sync_url
from tests.control_plane.conftest import ADMIN, CLUSTER, FakeClock

HEARTBEAT = "/internal/v1/nodes/heartbeat"
TTL = 15.0


def beat(node_id: str, role: str = "logic", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": node_id,
        "role": role,
        "zone": "z1",
        "region": "eu",
        "version": "1.0.0",
        "connections": 0,
        "capacity": 100,
        "draining": False,
    }
    if role == "logic":
        body["link_addr"] = f"10.0.0.1:{8100 + len(node_id)}"
    else:
        body["ws_url"] = f"ws://{node_id}.example:8000/"
    body.update(fields)
    return body


def send(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(HEARTBEAT, json=body, headers=CLUSTER)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def live_ids(client: TestClient, role: str | None = None) -> list[str]:
    params = {"role": role} if role else {}
    nodes = client.get("/internal/v1/nodes", params=params, headers=CLUSTER).json()["nodes"]
    return [n["id"] for n in nodes]


def test_heartbeat_registers_and_expires(client: TestClient, clock: FakeClock) -> None:
    gateway = send(client, beat("gw-1", "gateway", connections=10, tcp_addr="10.0.0.2:8001"))
    assert gateway == {"ttl_s": TTL, "id_node": None, "id_node_expires_at": None}
    logic = send(client, beat("logic-1"))
    assert logic["ttl_s"] == TTL
    assert 0 <= logic["id_node"] <= 1023
    assert logic["id_node_expires_at"] == clock.now + DEFAULT_ID_LEASE_TTL

    listed = client.get("/internal/v1/nodes", headers=CLUSTER).json()["nodes"]
    assert [n["id"] for n in listed] == ["gw-1", "logic-1"]
    assert listed[0] == {
        "id": "gw-1",
        "role": "gateway",
        "zone": "z1",
        "region": "eu",
        "pool": "",
        "version": "1.0.0",
        "ws_url": "ws://gw-1.example:8000/",
        "tcp_addr": "10.0.0.2:8001",
        "link_addr": None,
        "connections": 10,
        "capacity": 100,
        "draining": False,
        "id_node": None,
    }
    assert listed[1]["id_node"] == logic["id_node"]
    assert live_ids(client, "logic") == ["logic-1"]
    assert live_ids(client, "gateway") == ["gw-1"]

    admin = client.get("/v1/nodes", headers=ADMIN).json()["data"]
    assert admin[0]["load"] == pytest.approx(0.1)
    assert admin[0]["last_seen"] == clock.now
    assert admin[0]["expires_at"] == clock.now + TTL

    clock.advance(10)
    send(client, beat("gw-1", "gateway"))  # only the gateway keeps beating
    clock.advance(5)
    assert live_ids(client) == ["gw-1"]
    assert client.get("/v1/nodes", headers=ADMIN).json()["data"][0]["id"] == "gw-1"
    clock.advance(10)
    assert live_ids(client) == []
    assert client.get("/v1/nodes", headers=ADMIN).json() == {"data": []}


def test_lease_is_kept_across_heartbeats(client: TestClient, clock: FakeClock) -> None:
    first = send(client, beat("logic-1"))
    for _ in range(3):
        clock.advance(10)
        again = send(client, beat("logic-1", connections=3))
        assert again["id_node"] == first["id_node"]
        assert again["id_node_expires_at"] == clock.now + DEFAULT_ID_LEASE_TTL
    # Even after the lease expired (but nobody took the number), it gets it back.
    clock.advance(DEFAULT_ID_LEASE_TTL + 100)
    assert send(client, beat("logic-1"))["id_node"] == first["id_node"]


def test_internal_nodes_etag(client: TestClient, clock: FakeClock) -> None:
    send(client, beat("logic-1"))
    first = client.get("/internal/v1/nodes", headers=CLUSTER)
    etag = first.headers["ETag"]
    clock.advance(5)
    send(client, beat("logic-1"))  # same state, later: the answer has no timestamps
    cached = client.get("/internal/v1/nodes", headers={**CLUSTER, "If-None-Match": etag})
    assert cached.status_code == 304
    send(client, beat("logic-1", draining=True))
    changed = client.get("/internal/v1/nodes", headers={**CLUSTER, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["nodes"][0]["draining"] is True


@pytest.mark.parametrize(
    "body",
    [
        {},
        beat("x", role="broker"),
        beat(""),
        beat("a" * 65),
        beat("has space"),
        beat("a,b"),
        beat("x", capacity=0),
        beat("x", connections=-1),
        beat("x", connections=2**31),
        beat("x", zone="z" * 65),
        beat("x", draining="maybe"),
        {k: v for k, v in beat("x").items() if k != "capacity"},
        {k: v for k, v in beat("x").items() if k != "role"},
        [beat("x")],
    ],
)
def test_malformed_heartbeat_is_422(client: TestClient, body: Any) -> None:
    assert client.post(HEARTBEAT, json=body, headers=CLUSTER).status_code == 422
    assert live_ids(client) == []


def test_heartbeat_needs_the_cluster_secret(client: TestClient) -> None:
    assert client.post(HEARTBEAT, json=beat("x")).status_code == 401
    wrong = {"X-Cirno-Cluster-Secret": "nope"}
    assert client.post(HEARTBEAT, json=beat("x"), headers=wrong).status_code == 403
    assert client.post(HEARTBEAT, json=beat("x"), headers=ADMIN).status_code == 401
    assert client.get("/v1/nodes", headers=CLUSTER).status_code == 401


def wide_engine(database_url: str) -> Engine:
    """An engine with a connection per thread on MySQL (the default pool has 15)."""
    if backend_of(database_url) == "mysql":
        return create_engine(sync_url(database_url), pool_size=55, max_overflow=0)
    return make_engine(database_url)


def heartbeat_in(node_id: str) -> HeartbeatIn:
    return HeartbeatIn.model_validate(beat(node_id))


def direct_heartbeat(engine: Engine, node_id: str, now: float, count: int = 1024) -> int | None:
    with Session(engine) as session:
        result = record_heartbeat(
            session,
            heartbeat_in(node_id),
            now,
            node_ttl=TTL,
            lease_ttl=2 * TTL,
            id_node_count=count,
        )
        return result.lease.number if result.lease is not None else None


def test_fifty_concurrent_heartbeats_get_distinct_ids(migrated_url: str, clock: FakeClock) -> None:
    engine = wide_engine(migrated_url)
    numbers: dict[str, int | None] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def run(index: int) -> None:
        node_id = f"logic-{index:02d}"
        try:
            barrier.wait(timeout=30)
            numbers[node_id] = direct_heartbeat(engine, node_id, clock.now, count=64)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(50)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        engine.dispose()
    assert errors == []
    assert len(numbers) == 50
    leased = [n for n in numbers.values() if n is not None]
    assert len(leased) == 50, numbers
    assert len(set(leased)) == 50
    assert all(0 <= n < 64 for n in leased)


def test_a_number_is_reused_only_after_its_lease_expired(
    migrated_url: str, clock: FakeClock
) -> None:
    engine = make_engine(migrated_url)
    try:
        count = 4
        owners = {direct_heartbeat(engine, f"n{i}", clock.now, count): f"n{i}" for i in range(4)}
        assert set(owners) == {0, 1, 2, 3}
        # Every number is leased: a fifth node gets none.
        assert direct_heartbeat(engine, "n4", clock.now, count) is None
        # n0..n2 keep beating; n3 stops. Past the node TTL but within the lease: still none.
        victim = next(number for number, node in owners.items() if node == "n3")
        clock.advance(TTL + 1)
        for i in range(3):
            direct_heartbeat(engine, f"n{i}", clock.now, count)
        assert direct_heartbeat(engine, "n4", clock.now, count) is None
        # Past the lease: n4 takes exactly n3's number.
        clock.advance(TTL)
        for i in range(3):
            direct_heartbeat(engine, f"n{i}", clock.now, count)
        assert direct_heartbeat(engine, "n4", clock.now, count) == victim
        # n3 comes back: its number is gone and nothing else is free.
        assert direct_heartbeat(engine, "n3", clock.now, count) is None
        assert direct_heartbeat(engine, "n4", clock.now, count) == victim
    finally:
        engine.dispose()


def test_gateways_take_no_lease(migrated_url: str, clock: FakeClock) -> None:
    engine = make_engine(migrated_url)
    try:
        with Session(engine) as session:
            result = record_heartbeat(
                session,
                HeartbeatIn.model_validate(beat("gw", "gateway")),
                clock.now,
                node_ttl=TTL,
                lease_ttl=2 * TTL,
                id_node_count=1,
            )
        assert result.lease is None
        assert direct_heartbeat(engine, "logic", clock.now, count=1) == 0
    finally:
        engine.dispose()


def tenant_with_quota(client: TestClient, tenant_id: str, max_connections: int) -> None:
    body = {"id": tenant_id, "name": tenant_id, "max_connections": max_connections}
    assert client.post("/v1/tenants", json=body, headers=ADMIN).status_code == 201


def gateway_beat(client: TestClient, node_id: str, counts: dict[str, int]) -> dict[str, int]:
    """A gateway heartbeat reporting ``counts``; returns the counts held elsewhere."""
    answer = send(client, beat(node_id, "gateway", tenant_connections=counts))
    elsewhere: dict[str, int] = answer.get("tenant_connections", {})
    return elsewhere


def test_gateways_learn_each_others_connections_per_quota_tenant(
    client: TestClient, clock: FakeClock
) -> None:
    tenant_with_quota(client, "acme", 3)
    tenant_with_quota(client, "beta", 10)
    tenant_with_quota(client, "free", 0)  # unlimited: nobody needs its count
    assert gateway_beat(client, "gw-1", {"acme": 2, "beta": 1, "free": 9, "gone": 4}) == {}
    assert gateway_beat(client, "gw-2", {"acme": 1}) == {"acme": 2, "beta": 1}
    assert gateway_beat(client, "gw-3", {}) == {"acme": 3, "beta": 1}
    assert gateway_beat(client, "gw-1", {"acme": 2, "beta": 1}) == {"acme": 1}

    # A report replaces the previous one: tenants left out hold nothing there any more.
    assert gateway_beat(client, "gw-1", {"beta": 5}) == {"acme": 1}
    assert gateway_beat(client, "gw-3", {}) == {"acme": 1, "beta": 5}
    assert gateway_beat(client, "gw-1", {"beta": 0}) == {"acme": 1}  # zero = none
    assert gateway_beat(client, "gw-3", {}) == {"acme": 1}

    # Logic nodes take no part: their answer has no counts, whatever they send.
    logic = send(client, beat("logic-1", tenant_connections={"acme": 7}))
    assert "tenant_connections" not in logic
    assert gateway_beat(client, "gw-3", {}) == {"acme": 1}


def test_an_expired_gateway_stops_counting(client: TestClient, clock: FakeClock) -> None:
    tenant_with_quota(client, "acme", 3)
    gateway_beat(client, "gw-1", {"acme": 2})
    gateway_beat(client, "gw-2", {"acme": 1})
    clock.advance(TTL - 1)
    assert gateway_beat(client, "gw-2", {"acme": 1}) == {"acme": 2}
    clock.advance(1)  # gw-1's last heartbeat is TTL old: it expired
    assert gateway_beat(client, "gw-2", {"acme": 1}) == {}
    assert gateway_beat(client, "gw-1", {"acme": 1}) == {"acme": 1}  # back, with a new report
    assert gateway_beat(client, "gw-2", {"acme": 1}) == {"acme": 1}


def test_a_draining_gateway_counts_until_it_reports_none(
    client: TestClient, clock: FakeClock
) -> None:
    tenant_with_quota(client, "acme", 3)
    send(client, beat("gw-1", "gateway", draining=True, tenant_connections={"acme": 2}))
    assert gateway_beat(client, "gw-2", {}) == {"acme": 2}
    send(client, beat("gw-1", "gateway", draining=True, tenant_connections={}))
    assert gateway_beat(client, "gw-2", {}) == {}


def test_a_large_report_is_stored_and_summed(client: TestClient, clock: FakeClock) -> None:
    many = {f"t{i:05d}": i % 7 + 1 for i in range(1200)}
    for tenant in list(many)[:3]:
        tenant_with_quota(client, tenant, 100)
    gateway_beat(client, "gw-1", many)  # more than one DELETE chunk of rows later
    assert gateway_beat(client, "gw-2", {}) == {"t00000": 1, "t00001": 2, "t00002": 3}
    gateway_beat(client, "gw-1", {"t00001": 5})
    assert gateway_beat(client, "gw-2", {}) == {"t00001": 5}


@pytest.mark.parametrize(
    "counts",
    [
        {"acme": -1},
        {"acme": 2**31},
        {"acme": 1.5},
        {"acme": None},
        {"Not-A-Tenant": 1},
        {"": 1},
        {"a" * 65: 1},
        [["acme", 1]],
        {f"t{i}": 1 for i in range(10_001)},
    ],
)
def test_malformed_tenant_connections_are_422(client: TestClient, counts: Any) -> None:
    body = beat("gw-x", "gateway", tenant_connections=counts)
    assert client.post(HEARTBEAT, json=body, headers=CLUSTER).status_code == 422
    assert live_ids(client) == []
