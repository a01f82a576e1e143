"""Two control-plane apps on one database: each sees the other's writes, whatever the clocks.

Snapshots detect other processes' writes by revision counters, not by timestamps, so a
write stamped no later than the newest stamp already stored (the same clock tick, or a
replica whose clock is behind) is still seen at the next reload. Both apps run on every
backend (SQLite file, MySQL); their clocks are fake: one frozen tick, or one running
seconds behind the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from control_plane.app import create_app
from control_plane.db import make_engine
from control_plane.models import RevisionScope, commit_change, read_revisions
from tests.control_plane.conftest import ADMIN, FakeClock, heartbeat_gateway, settings_for

SECRET = "revision-tests-secret-0123456789abcdef"
SKEW = 5.0
"""Seconds the second app's clock runs behind the first's (more than the re-read margin)."""


@dataclass
class SkewedClock:
    """``base`` minus ``behind`` seconds."""

    base: FakeClock
    behind: float

    def __call__(self) -> float:
        return self.base() - self.behind


@dataclass
class Pair:
    """App ``a`` answers routes; app ``b`` (same database, maybe another clock) writes."""

    a: TestClient
    b: TestClient
    clock: FakeClock
    token: str = ""

    def route(self) -> dict[str, Any]:
        response = self.a.get("/v1/route", params={"token": self.token})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def routed(self) -> list[str]:
        return sorted(g["id"] for g in self.route()["gateways"])


def set_up(writer: TestClient) -> str:
    """Two tenants, a region, a canary rule for alice and one for web clients; alice's token.

    Two rows of each kind, so that an update stamped earlier leaves the newest stamp of
    the table where it was (as it does with any real number of rows).
    """
    for tenant_id in ("acme", "other"):
        tenant = {"id": tenant_id, "name": tenant_id, "secret": SECRET}
        assert writer.post("/v1/tenants", json=tenant, headers=ADMIN).status_code == 201
    region = {"id": "eu", "name": "Europe", "countries": ["DE"], "zones": [{"zone": "eu-a"}]}
    assert writer.post("/v1/regions", json=region, headers=ADMIN).status_code == 201
    for rule in (
        {"id": "canary", "priority": 1, "accounts": ["alice"], "gateway_pool": "canary"},
        {"id": "web", "priority": 2, "platforms": ["web"], "gateway_pool": "web"},
    ):
        assert writer.post("/v1/grayscale/rules", json=rule, headers=ADMIN).status_code == 201
    response = writer.post(
        "/v1/tenants/acme/tokens", json={"account": "alice", "ttl": 3600}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture(params=[0.0, SKEW], ids=["same-clock", "b-behind"])
def pair(request: pytest.FixtureRequest, migrated_url: str, clock: FakeClock) -> Iterator[Pair]:
    behind: float = request.param
    app_a = create_app(settings_for(migrated_url, clock=clock))
    app_b = create_app(settings_for(migrated_url, clock=SkewedClock(clock, behind)))
    with TestClient(app_a) as a, TestClient(app_b) as b:
        yield Pair(a, b, clock, set_up(a))


def test_writes_in_the_same_tick_or_stamped_earlier_are_seen(pair: Pair) -> None:
    """A's snapshot holds rows stamped now; B's updates carry the same or older stamps."""
    heartbeat_gateway(pair.a, "gw-1")
    heartbeat_gateway(pair.a, "gw-2", pool="canary")
    assert pair.routed() == ["gw-2"]  # the rule sends alice to the canary pool

    patch = {"gateway_pool": "blue"}  # no such pool: the region's default pool instead
    assert pair.b.patch("/v1/grayscale/rules/canary", json=patch, headers=ADMIN).status_code == 200
    assert pair.routed() == ["gw-2"]  # A's snapshot is younger than its TTL
    pair.clock.advance(1.5)
    answer = pair.route()
    assert (answer["pool"], answer["fallback"]) == ("stable", True)
    assert [g["id"] for g in answer["gateways"]] == ["gw-1"]

    disable = {"status": "disabled"}
    assert pair.b.patch("/v1/tenants/acme", json=disable, headers=ADMIN).status_code == 200
    pair.clock.advance(1.5)
    refused = pair.a.get("/v1/route", params={"token": pair.token})
    assert refused.status_code == 403, refused.text


def test_node_shape_changes_through_another_process_are_seen(pair: Pair) -> None:
    heartbeat_gateway(pair.a, "gw-1")
    heartbeat_gateway(pair.a, "gw-2", pool="canary")
    assert pair.routed() == ["gw-2"]
    pair.clock.advance(1.5)
    # B's heartbeat carries an expiry up to SKEW seconds older than A's newest.
    heartbeat_gateway(pair.b, "gw-2", pool="canary", draining=True)
    pair.clock.advance(1.5)
    answer = pair.route()  # canary drained: the region's default pool
    assert (answer["pool"], answer["fallback"]) == ("stable", True)
    assert [g["id"] for g in answer["gateways"]] == ["gw-1"]
    heartbeat_gateway(pair.b, "gw-2", pool="canary", ws_url="ws://gw-2.moved:8000/")
    pair.clock.advance(1.5)
    assert pair.route()["gateways"] == [
        {"id": "gw-2", "ws_url": "ws://gw-2.moved:8000/", "tcp_addr": None, "zone": "eu-a"}
    ]


def test_a_gateway_kept_alive_only_through_another_process_stays_routable(pair: Pair) -> None:
    """A slower clock's renewals fall behind the re-read window: looked up before expiry."""
    heartbeat_gateway(pair.a, "gw-1")
    heartbeat_gateway(pair.a, "gw-2")
    assert pair.b.delete("/v1/grayscale/rules/canary", headers=ADMIN).status_code == 204
    assert pair.routed() == ["gw-1", "gw-2"]
    pair.clock.advance(10)
    heartbeat_gateway(pair.a, "gw-2")  # A's newest expiry moves 10 s on
    assert pair.routed() == ["gw-1", "gw-2"]
    pair.clock.advance(1)
    heartbeat_gateway(pair.b, "gw-1")  # renewed through B only: no shape change, no revision bump
    pair.clock.advance(1.5)
    assert pair.routed() == ["gw-1", "gw-2"]
    pair.clock.advance(4)  # past gw-1's first expiry, not its renewed one
    assert pair.routed() == ["gw-1", "gw-2"]
    pair.clock.advance(12)  # past both renewals
    response = pair.a.get("/v1/route", params={"token": pair.token})
    assert response.status_code == 503


def test_counters_count_and_a_missing_row_is_created_again(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with Session(engine) as session:
            start = read_revisions(session)
            assert set(start) == {scope.value for scope in RevisionScope}
            commit_change(session)
            commit_change(session, RevisionScope.GATEWAYS)
            after = read_revisions(session)
            assert after["directory"] == start["directory"] + 1
            assert after["gateways"] == start["gateways"] + 1
            session.connection().execute(text("DELETE FROM revisions WHERE scope = 'gateways'"))
            session.commit()
            commit_change(session, RevisionScope.GATEWAYS)
            assert read_revisions(session)["gateways"] == 1
    finally:
        engine.dispose()
