"""The ASGI fast path of ``GET /v1/route`` answers exactly what the declared route does.

Two apps on one database, clock and GeoIP file: one serves ``/v1/route`` through the
fast path (the default), the other through the FastAPI route only
(``create_app(..., fast_route=False)``). The same requests must get the same status,
the same raw headers and the same bytes from both, and be counted the same way in the
metrics; the parsing helpers must read parameters and headers as Starlette does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers, QueryParams

from control_plane.app import create_app
from control_plane.models import ErrorResponse
from control_plane.route.answer import encode_answer
from control_plane.route.fast_path import RouteFastPath
from control_plane.route.models import HEARTBEAT_INTERVAL_S, Reconnect, RouteAnswer
from control_plane.route.request import (
    PARAMETER_LIMITS,
    RouteRefused,
    read_headers,
    read_parameters,
)
from control_plane.route.snapshot import GatewayView
from control_plane.settings import parse_networks
from tests.control_plane.conftest import ADMIN, ADMIN_TOKEN, CLUSTER, FakeClock, settings_for
from tests.control_plane.geo import DE_V4, DE_V6, FR_V4, JP_V4, UNKNOWN_V4, US_V4, US_V6

SECRET = "fast-route-tests-secret-0123456789"
AS_ADMIN = {"X-Cirno-Admin-Token": ADMIN_TOKEN}
PROXY = "10.1.2.3"


@dataclass
class Pair:
    """The same database served with and without the fast path."""

    fast: FastAPI
    slow: FastAPI
    clock: FakeClock
    clients: list[TestClient] = field(default_factory=list)

    def client(self, app: FastAPI, peer: str | None) -> TestClient:
        client = TestClient(app) if peer is None else TestClient(app, client=(peer, 40000))
        self.clients.append(client)
        return client

    def both(
        self, target: str, *, headers: dict[str, str] | None = None, peer: str | None = None
    ) -> tuple[Any, Any]:
        """``GET target`` on both apps; asserts equal answers and returns them."""
        fast = self.client(self.fast, peer).get(target, headers=headers or {})
        slow = self.client(self.slow, peer).get(target, headers=headers or {})
        assert fast.status_code == slow.status_code, (target, fast.text, slow.text)
        assert fast.headers.raw == slow.headers.raw, target
        assert fast.content == slow.content, target
        return fast, slow


@pytest.fixture
def pair(sqlite_url: str, clock: FakeClock, geoip_db: Path) -> Iterator[Pair]:
    def app(fast_route: bool) -> FastAPI:
        settings = settings_for(
            sqlite_url,
            clock=clock,
            geoip_db=str(geoip_db),
            trusted_proxies=parse_networks("10.0.0.0/8, fd00::/8"),
        )
        return create_app(settings, fast_route=fast_route)

    fast, slow = app(True), app(False)
    with TestClient(fast) as admin, TestClient(slow):
        tenant = {"id": "acme", "name": "Acme", "secret": SECRET}
        assert admin.post("/v1/tenants", json=tenant, headers=ADMIN).status_code == 201
        for body in (
            {"id": "eu", "name": "Europe", "countries": ["DE"], "continents": ["EU"]},
            {"id": "us", "name": "US", "countries": ["US"], "continents": ["NA"]},
            {"id": "asia", "name": "Asia", "continents": ["AS"]},
        ):
            assert admin.post("/v1/regions", json=body, headers=ADMIN).status_code == 201
        for node, region, connections, pool in (
            ("eu-1", "eu", 50, ""),
            ("eu-2", "eu", 10, ""),
            ("eu-3", "eu", 90, "canary"),
            ("us-1", "us", 30, ""),
        ):
            heartbeat = {
                "id": node,
                "role": "gateway",
                "zone": f"{region}-a",
                "region": region,
                "pool": pool,
                "version": "1.0.0",
                "ws_url": f"ws://{node}.test:8000/",
                "tcp_addr": f"{node}.test:8001",
                "connections": connections,
                "capacity": 100,
            }
            response = admin.post("/internal/v1/nodes/heartbeat", json=heartbeat, headers=CLUSTER)
            assert response.status_code == 200
        rule = {"id": "ios", "priority": 1, "platforms": ["ios"], "gateway_pool": "canary"}
        assert admin.post("/v1/grayscale/rules", json=rule, headers=ADMIN).status_code == 201
        created = Pair(fast, slow, clock)
        yield created
        for client in created.clients:
            client.close()


def sign(claims: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def test_both_paths_give_identical_answers(pair: Pair) -> None:
    now = int(pair.clock.now)
    good = sign({"acc": "alice", "app": "acme", "exp": now + 600}, kid="k1")
    bob = sign({"acc": "bob", "app": "acme", "exp": now + 600})
    requests: list[tuple[str, dict[str, str] | None, str | None]] = [
        (f"/v1/route?token={good}", None, None),
        (f"/v1/route?token={good}", None, US_V4),
        (f"/v1/route?token={bob}&version=2.0&platform=iOS", None, DE_V4),
        (f"/v1/route?token={bob}&platform=ios+x&version=%31.0", None, JP_V4),
        (f"/v1/route?token=bad&token={good}", None, None),  # the last one counts
        (f"/v1/route?token={good}&token=bad", None, None),
        ("/v1/route", {"Authorization": f"Bearer {good}"}, None),
        ("/v1/route", {"Authorization": f"bearer   {good}  "}, None),
        ("/v1/route", {"Authorization": f"Basic {good}"}, None),
        ("/v1/route", None, None),
        ("/v1/route?token=", None, None),
        ("/v1/route?token=not.a.jwt", None, None),
        ("/v1/route?token=%E2%9C%93.%C3%A9.x", None, None),
        (f"/v1/route?token={sign({'acc': 'alice', 'app': 'globex', 'exp': now + 9})}", None, None),
        (f"/v1/route?token={sign({'acc': 'a', 'app': 'acme', 'exp': now - 1})}", None, None),
        (f"/v1/route?token={sign({'acc': 'a,b', 'app': 'acme', 'exp': now + 9})}", None, None),
        (f"/v1/route?token={sign({'acc': 'a', 'app': 'acme', 'exp': 1}, 'x' * 32)}", None, None),
        (f"/v1/route?token={good}&version={'9' * 33}", None, None),
        (f"/v1/route?token={good}&platform={'p' * 33}", None, None),
        (f"/v1/route?token={'x' * 5000}", None, None),
        (f"/v1/route?token={good}&ip={'1' * 65}", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip={DE_V6}", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip={FR_V4}", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip={UNKNOWN_V4}", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip=%20{US_V6}%20", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip=::ffff:{US_V4}", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip={DE_V4}", None, None),
        (f"/v1/route?token={good}&ip={DE_V4}", {"X-Cirno-Admin-Token": "guess"}, None),
        (f"/v1/route?token={good}&ip=example.com", AS_ADMIN, None),
        (f"/v1/route?token={good}&ip=", AS_ADMIN, None),
        (f"/v1/route?token={good}", {"X-Forwarded-For": f"{US_V4}, {DE_V4}"}, PROXY),
        (f"/v1/route?token={good}", {"X-Forwarded-For": f"{DE_V4}, 10.9.9.9"}, PROXY),
        (f"/v1/route?token={good}", {"X-Forwarded-For": f"[{US_V6}]:443"}, "fd00::1"),
        (f"/v1/route?token={good}", {"X-Forwarded-For": f"{DE_V4}, bogus"}, PROXY),
        (f"/v1/route?token={good}", {"X-Forwarded-For": DE_V4}, US_V4),  # untrusted peer
        (f"/v1/route?token={good}", {"X-Forwarded-For": "bogus"}, US_V4),
    ]
    for target, headers, peer in requests:
        fast, _ = pair.both(target, headers=headers, peer=peer)
        if fast.status_code == 200:
            RouteAnswer.model_validate_json(fast.content)
        else:
            ErrorResponse.model_validate_json(fast.content)
    statuses = {pair.both(t, headers=h, peer=p)[0].status_code for t, h, p in requests}
    assert statuses == {200, 400, 401, 403}

    # Written through one app: the other sees it after its snapshot's TTL (1 s), by the
    # change of the tenant's updated_at (a write time on the apps' clock).
    pair.clock.advance(2)
    with TestClient(pair.fast) as admin:
        admin.patch("/v1/tenants/acme", json={"status": "disabled"}, headers=ADMIN)
    pair.clock.advance(2)
    assert pair.both(f"/v1/route?token={good}")[0].status_code == 403
    with TestClient(pair.fast) as admin:
        admin.patch("/v1/tenants/acme", json={"status": "active"}, headers=ADMIN)
    pair.clock.advance(2)
    assert pair.both(f"/v1/route?token={good}")[0].status_code == 200
    pair.clock.advance(60)  # every gateway has expired
    none, _ = pair.both(f"/v1/route?token={good}")
    assert (none.status_code, none.json()) == (503, {"detail": "no live gateway"})


def test_other_requests_fall_through_to_fastapi(pair: Pair) -> None:
    good = sign({"acc": "alice", "app": "acme", "exp": int(pair.clock.now) + 600})
    for method, target in (
        ("HEAD", f"/v1/route?token={good}"),
        ("POST", f"/v1/route?token={good}"),
        ("GET", f"/v1/route/?token={good}"),
        ("GET", "/v1/ping"),
    ):
        fast = TestClient(pair.fast).request(method, target, follow_redirects=False)
        slow = TestClient(pair.slow).request(method, target, follow_redirects=False)
        assert (fast.status_code, fast.headers.raw, fast.content) == (
            slow.status_code,
            slow.headers.raw,
            slow.content,
        ), (method, target)
    assert TestClient(pair.fast).head(f"/v1/route?token={good}").status_code == 405


def route_counts(app: FastAPI) -> list[str]:
    text = TestClient(app).get("/metrics").text
    return sorted(
        line
        for line in text.splitlines()
        if 'route="/v1/route"' in line and re.match(r"cirno_control_http_\w+(_total|_count)", line)
    )


def test_metrics_count_fast_answers_like_routed_ones(pair: Pair) -> None:
    good = sign({"acc": "alice", "app": "acme", "exp": int(pair.clock.now) + 600})
    for target in (f"/v1/route?token={good}", "/v1/route", f"/v1/route?token={good}"):
        pair.both(target)
    fast = route_counts(pair.fast)
    assert fast == route_counts(pair.slow)
    counter = 'cirno_control_http_requests_total{method="GET",route="/v1/route",status='
    assert f'{counter}"200"}} 2.0' in fast
    assert f'{counter}"401"}} 1.0' in fast


def test_an_unexpected_error_is_a_500_like_elsewhere(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> bytes:
        raise RuntimeError("boom")

    for app in (pair.fast, pair.slow):
        monkeypatch.setattr(app.state.route_service, "answer", broken)
    fast = TestClient(pair.fast, raise_server_exceptions=False).get("/v1/route?token=x")
    slow = TestClient(pair.slow, raise_server_exceptions=False).get("/v1/route?token=x")
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert fast.status_code == 500
    assert route_counts(pair.fast) == route_counts(pair.slow)
    assert any('status="500"} 1.0' in line for line in route_counts(pair.fast))


def test_the_app_serves_the_route_through_the_fast_path(pair: Pair) -> None:
    """The declared route's own service is never used while the fast path is in place."""

    class Unused:
        async def answer(self, *_args: Any) -> bytes:
            raise AssertionError("the declared route served /v1/route")

    pair.fast.state.route_service = Unused()
    good = sign({"acc": "alice", "app": "acme", "exp": int(pair.clock.now) + 600})
    assert TestClient(pair.fast).get(f"/v1/route?token={good}").status_code == 200
    stack = pair.fast.middleware_stack
    layers = []
    while stack is not None:
        layers.append(type(stack))
        stack = getattr(stack, "app", None)
    assert RouteFastPath in layers


QUERY_PIECES = st.sampled_from(
    ["token", "version", "platform", "ip", "=", "&", ";", "+", "%", "%2", "%41", "%C3%A9"]
)
queries = st.one_of(
    st.binary(max_size=80),
    st.lists(st.one_of(QUERY_PIECES, st.text(max_size=40)), max_size=12).map(
        lambda parts: "".join(parts).encode("utf-8")
    ),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(queries)
def test_parameters_are_read_as_starlette_reads_them(query: bytes) -> None:
    expected = {name: QueryParams(query).get(name) for name in PARAMETER_LIMITS}
    too_long = [
        name
        for name, limit in PARAMETER_LIMITS.items()
        if limit is not None and (value := expected[name]) is not None and len(value) > limit
    ]
    if too_long:
        with pytest.raises(RouteRefused) as refused:
            read_parameters(query)
        assert (refused.value.status, refused.value.detail.split()[0]) == (400, too_long[0])
    else:
        assert read_parameters(query) == expected


header_names = st.sampled_from(
    [b"authorization", b"x-cirno-admin-token", b"x-forwarded-for", b"host", b"authorizatio"]
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(header_names, st.binary(max_size=20)), max_size=8))
def test_headers_are_read_as_starlette_reads_them(raw: list[tuple[bytes, bytes]]) -> None:
    headers = Headers(raw=raw)
    assert read_headers(raw) == (
        headers.get("authorization"),
        headers.get("x-cirno-admin-token"),
        headers.getlist("x-forwarded-for"),
    )


optional_text = st.none() | st.text(max_size=12)
gateway_views = st.builds(
    GatewayView,
    id=st.text(max_size=12),
    zone=st.text(max_size=8),
    region=st.just("eu"),
    pool=st.just(""),
    ws_url=optional_text,
    tcp_addr=optional_text,
    connections=st.just(0),
    capacity=st.just(1),
    draining=st.just(False),
    expires_at=st.just(0.0),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    optional_text,
    optional_text,
    optional_text,
    st.sampled_from(["db", "none", "admin"]),
    optional_text,
    st.booleans(),
    st.lists(gateway_views, max_size=3),
    optional_text,
    optional_text,
)
def test_answers_are_encoded_as_json_dumps_would(
    country: str | None,
    continent: str | None,
    region: str | None,
    geo: str,
    pool: str | None,
    fallback: bool,
    gateways: list[GatewayView],
    rule: str | None,
    fallback_reason: str | None,
) -> None:
    answer = {
        "country": country,
        "continent": continent,
        "region": region,
        "geo": geo,
        "pool": pool,
        "rule": rule,
        "fallback": fallback,
        "fallback_reason": fallback_reason,
        "gateways": [
            {"id": g.id, "ws_url": g.ws_url, "tcp_addr": g.tcp_addr, "zone": g.zone}
            for g in gateways
        ],
        "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
        "reconnect": Reconnect().model_dump(),
    }
    encoded = encode_answer(
        country, continent, region, geo, pool, fallback, gateways, rule, fallback_reason
    )
    assert encoded == json.dumps(answer, separators=(",", ":")).encode("utf-8")
    assert RouteAnswer.model_validate_json(encoded).model_dump() == answer
