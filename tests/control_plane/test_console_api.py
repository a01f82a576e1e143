"""``/v1/console/…``: the route preview agrees with ``/v1/route``, and the chart figures.

The preview must be the routing code's own answer, so it is compared with what
``GET /v1/route`` answers for the same account, version, platform and address across
regions, grayscale rules (account lists, percentages, versions, platforms) and
gateway pools. The charts are scraped from a real Prometheus endpoint.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import MetricsHandler

from cirno.harness.ports import closed_port_url
from control_plane.app import create_app
from control_plane.console.settings import METRICS_TARGETS_ENV
from data_plane.cluster.grayscale import bucket
from tests.control_plane.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    CLUSTER,
    FakeClock,
    heartbeat_gateway,
    settings_for,
)
from tests.control_plane.geo import DE_V4, FR_V4, UNKNOWN_V4, US_V4

AS_ADMIN = {"X-Cirno-Admin-Token": ADMIN_TOKEN}
ACCOUNTS = [f"user{n}" for n in range(12)] + ["alice", "bob"]


@pytest.fixture
def routed(migrated_url: str, clock: FakeClock, geoip_db: Path) -> Iterator[TestClient]:
    """An app with two regions, stable and canary gateways, and three grayscale rules."""
    app = create_app(settings_for(migrated_url, clock=clock, geoip_db=str(geoip_db)))
    with TestClient(app) as client:
        created = client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
        assert created.status_code == 201, created.text
        for body in (
            {"id": "eu", "name": "EU", "countries": ["DE"], "continents": ["EU"]},
            {"id": "us", "name": "US", "countries": ["US"], "is_default": True},
        ):
            assert client.post("/v1/regions", json=body, headers=ADMIN).status_code == 201
        for node, region, pool in (
            ("eu-1", "eu", ""),
            ("eu-2", "eu", ""),
            ("eu-canary", "eu", "canary"),
            ("us-1", "us", ""),
        ):
            heartbeat_gateway(client, node, region=region, zone=f"{region}-a", pool=pool)
        for rule in (
            {"id": "vip", "priority": 1, "accounts": ["alice"], "gateway_pool": "canary"},
            {
                "id": "half",
                "priority": 2,
                "percent": 50,
                "platforms": ["ios"],
                "gateway_pool": "canary",
                "logic_zone": "eu-b",
            },
            {"id": "new", "priority": 3, "min_version": "2.0", "gateway_pool": "beta"},
        ):
            assert client.post("/v1/grayscale/rules", json=rule, headers=ADMIN).status_code == 201
        yield client


def token(client: TestClient, account: str) -> str:
    answer = client.post("/v1/tenants/acme/tokens", json={"account": account}, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    value: str = answer.json()["token"]
    return value


def test_the_preview_is_what_the_route_answers(routed: TestClient) -> None:
    compared = 0
    cases = itertools.product(
        ACCOUNTS, (DE_V4, US_V4, FR_V4, UNKNOWN_V4), ("1.0", "2.1"), ("ios", "web")
    )
    for account, ip, version, platform in cases:
        params = {"version": version, "platform": platform, "ip": ip}
        routed_answer = routed.get(
            "/v1/route", params={**params, "token": token(routed, account)}, headers=AS_ADMIN
        ).json()
        preview = routed.get(
            "/v1/console/route-preview",
            params={**params, "tenant": "acme", "account": account},
            headers=ADMIN,
        )
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        for key in ("country", "continent", "region", "pool", "fallback", "gateways", "geo"):
            assert shown[key] == routed_answer[key], (account, params, key)
        assert shown["bucket"] == bucket("acme", account)
        compared += 1
    assert compared == len(ACCOUNTS) * 16


def test_the_preview_names_the_deciding_rules(routed: TestClient) -> None:
    def preview(account: str, **params: str) -> dict[str, Any]:
        answer = routed.get(
            "/v1/console/route-preview",
            params={"tenant": "acme", "account": account, **params},
            headers=ADMIN,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    alice = preview("alice", ip=DE_V4)
    assert (alice["rule_id"], alice["pool_rule_id"], alice["pool"]) == ("vip", "vip", "canary")
    assert [g["id"] for g in alice["gateways"]] == ["eu-canary"]
    in_half = next(a for a in ACCOUNTS if a != "alice" and bucket("acme", a) < 50)
    half = preview(in_half, ip=DE_V4, platform="ios")
    assert (half["pool_rule_id"], half["zone_rule_id"], half["logic_zone"]) == (
        "half", "half", "eu-b",
    )  # fmt: skip
    beta = preview("bob", ip=DE_V4, version="2.1")
    if bucket("acme", "bob") >= 50:  # only the version rule applies: no beta gateway
        assert (beta["pool_rule_id"], beta["fallback"]) == ("new", True)
    nobody = preview("bob", version="1.0")  # no address: the default region
    assert (nobody["geo"], nobody["region"], nobody["rule_id"]) == ("none", "us", None)


def test_preview_refusals(routed: TestClient) -> None:
    query = {"tenant": "acme", "account": "bob"}
    assert routed.get("/v1/console/route-preview", params=query).status_code == 401
    bad = routed.get("/v1/console/route-preview", params={**query, "ip": "nope"}, headers=ADMIN)
    assert bad.status_code == 400
    assert routed.get("/v1/console/route-preview", headers=ADMIN).status_code == 422


def test_charts_from_the_registry_without_targets(client: TestClient, clock: FakeClock) -> None:
    heartbeat_gateway(client, "gw-1", connections=7)
    first = client.get("/v1/console/metrics", headers=ADMIN).json()
    assert (first["source"], first["targets"], first["points"]) == ("registry", [], [])
    clock.advance(0.5)  # within the scrape interval: the same history, no new point
    assert client.get("/v1/console/metrics", headers=ADMIN).json()["points"] == []
    clock.advance(1.0)
    points = client.get("/v1/console/metrics", headers=ADMIN).json()["points"]
    assert [(p["connections"], p["messages_per_s"], p["p99_ms"]) for p in points] == [
        (7.0, 0.0, None)
    ]


class Exporter:
    """A real Prometheus endpoint with the data plane's metric names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cirno_logic_requests", "", ["command", "outcome"], registry=self.registry
        )
        self.logins = Counter("cirno_gateway_logins", "", ["result"], registry=self.registry)
        self.connections = Gauge(
            "cirno_gateway_connections", "", ["transport"], registry=self.registry
        )
        self.latency = Histogram(
            "cirno_logic_request_seconds", "", ["command"], registry=self.registry,
            buckets=(0.001, 0.01, 0.1),
        )  # fmt: skip
        handler = MetricsHandler.factory(self.registry)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_charts_scrape_the_targets(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = Exporter()
    dead = closed_port_url("/metrics")
    monkeypatch.setenv(METRICS_TARGETS_ENV, f"{exporter.url},{dead}")
    try:
        with TestClient(create_app(settings_for(sqlite_url, clock=clock))) as client:
            first = client.get("/v1/console/metrics", headers=ADMIN).json()
            assert first["source"] == "scrape"
            states = {t["url"]: t["up"] for t in first["targets"]}
            assert states == {exporter.url: True, dead: False}
            exporter.requests.labels("chat.user.talk", "ok").inc(30)
            exporter.requests.labels("chat.group.talk", "ok").inc(10)
            exporter.requests.labels("chat.talk.ack", "ok").inc(99)  # not a message
            exporter.logins.labels("ok").inc(4)
            exporter.connections.labels("ws").set(12)
            for _ in range(99):
                exporter.latency.labels("chat.user.talk").observe(0.0005)
            exporter.latency.labels("chat.user.talk").observe(0.05)
            clock.advance(2.0)
            points = client.get("/v1/console/metrics", headers=ADMIN).json()["points"]
    finally:
        exporter.close()
    assert len(points) == 1
    point = points[0]
    assert (point["messages_per_s"], point["logins_per_s"], point["connections"]) == (
        20.0, 2.0, 12.0,
    )  # fmt: skip
    # 99 of 100 requests are in the first bucket: p99 is its upper bound, 1 ms.
    assert point["p99_ms"] == pytest.approx(1.0)


def test_console_endpoints_need_the_admin_token(client: TestClient) -> None:
    answer = client.get("/v1/console/metrics", headers=CLUSTER)
    assert answer.status_code == 401
