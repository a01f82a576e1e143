"""``/v1/route`` while the database is unreachable: the last good snapshot, never a 500.

The database really goes away: MySQL is reached through the cuttable TCP proxy of the
fault tests (``cut()`` aborts every connection and refuses new ones), and a SQLite URL
that names a directory cannot be opened at all. Time is a fake clock, so the TTL, the
retry back-off and gateway expiry are stepped through exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
import pytest
from fastapi.testclient import TestClient

from cirno.tcp_proxy import TcpProxy
from control_plane.app import create_app
from control_plane.errors import DATABASE_UNAVAILABLE
from control_plane.route.cache import UNAVAILABLE
from tests.control_plane.conftest import (
    ADMIN,
    FakeClock,
    empty_mysql,
    heartbeat_gateway,
    settings_for,
)

SECRET = "outage-tests-secret-0123456789abcdef"
NODE_TTL = 15.0


@pytest.fixture
def proxied_mysql(mysql_migrated: str) -> Iterator[tuple[TcpProxy, str]]:
    """The module's emptied MySQL database behind a cuttable proxy, and the URL through it."""
    empty_mysql(mysql_migrated)
    parts = urlsplit(mysql_migrated)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 3306))
    netloc = f"{parts.username or 'root'}@127.0.0.1:{proxy.port}"
    try:
        yield proxy, urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    finally:
        proxy.close()


def token(client: TestClient, tenant: str = "acme", account: str = "alice") -> str:
    response = client.post(
        f"/v1/tenants/{tenant}/tokens", json={"account": account, "ttl": 3600}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    minted: str = response.json()["token"]
    return minted


def routed(client: TestClient, user_token: str) -> list[str]:
    response = client.get("/v1/route", params={"token": user_token})
    assert response.status_code == 200, response.text
    return sorted(g["id"] for g in response.json()["gateways"])


def forged(tenant: str) -> str:
    """A well-formed token of ``tenant``, signed with a secret nobody stored."""
    return jwt.encode({"acc": "eve", "app": tenant, "exp": 4_000_000_000}, SECRET, "HS256")


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


FAILURES = "cirno_control_route_snapshot_reload_failures_total"
IN_A_ROW = "cirno_control_route_snapshot_consecutive_failures"
AGE = "cirno_control_route_snapshot_age_seconds"


def test_the_last_good_snapshot_is_served_while_mysql_is_unreachable(
    proxied_mysql: tuple[TcpProxy, str], clock: FakeClock
) -> None:
    proxy, url = proxied_mysql
    with TestClient(create_app(settings_for(url, clock=clock, node_ttl=NODE_TTL))) as client:
        tenant = {"id": "acme", "name": "Acme", "secret": SECRET}
        assert client.post("/v1/tenants", json=tenant, headers=ADMIN).status_code == 201
        body = {"id": "eu", "name": "Europe", "countries": ["DE"], "zones": [{"zone": "eu-a"}]}
        assert client.post("/v1/regions", json=body, headers=ADMIN).status_code == 201
        alice = token(client)
        heartbeat_gateway(client, "gw-a")
        clock.advance(5)
        heartbeat_gateway(client, "gw-b")  # expires 5 s after gw-a
        assert routed(client, alice) == ["gw-a", "gw-b"]
        assert metric(client, FAILURES) == 0

        proxy.cut()
        clock.advance(2)  # stale: the reload fails, the last snapshot answers
        assert routed(client, alice) == ["gw-a", "gw-b"]
        assert metric(client, FAILURES) == 1
        assert metric(client, IN_A_ROW) == 1
        assert metric(client, AGE) == 2
        assert routed(client, alice) == ["gw-a", "gw-b"]  # no retry within the TTL
        assert metric(client, FAILURES) == 1
        # An unknown tenant asks for a reload; the back-off holds, the answer is a 401.
        stranger = client.get("/v1/route", params={"token": forged("nobody")})
        assert stranger.status_code == 401
        assert metric(client, FAILURES) == 1

        clock.advance(1)  # one TTL later: retried, failed again
        assert routed(client, alice) == ["gw-a", "gw-b"]
        assert metric(client, FAILURES) == 2
        clock.advance(NODE_TTL - 8 + 0.5)  # past gw-a's expiry: filtered at request time
        assert routed(client, alice) == ["gw-b"]
        clock.advance(5)  # past gw-b's too: a clear 503, not a 500
        response = client.get("/v1/route", params={"token": alice})
        assert (response.status_code, response.json()) == (503, {"detail": "no live gateway"})
        assert metric(client, IN_A_ROW) == 4

        proxy.restore()
        heartbeat_gateway(client, "gw-c")  # a write through this process: reloaded at once
        assert routed(client, alice) == ["gw-c"]
        assert metric(client, IN_A_ROW) == 0
        assert metric(client, FAILURES) == 4
        assert metric(client, AGE) == 0


def test_without_any_snapshot_the_route_answers_503_with_a_reason(
    proxied_mysql: tuple[TcpProxy, str], clock: FakeClock
) -> None:
    proxy, url = proxied_mysql
    app = create_app(settings_for(url, clock=clock))
    with TestClient(app) as client:
        tenant = {"id": "acme", "name": "Acme"}
        assert client.post("/v1/tenants", json=tenant, headers=ADMIN).status_code == 201
        alice = token(client)
        heartbeat_gateway(client, "gw-a")
        proxy.cut()  # before the first route request: nothing was ever loaded
        for _ in range(2):
            response = client.get("/v1/route", params={"token": alice})
            assert response.status_code == 503
            assert response.json() == {"detail": UNAVAILABLE}
            assert response.headers["retry-after"] == "1"
        assert metric(client, FAILURES) == 1  # the second one did not retry
        assert metric(client, AGE) != metric(client, AGE)  # NaN: no snapshot

        proxy.restore()
        assert client.get("/v1/route", params={"token": alice}).status_code == 503  # back-off
        clock.advance(1)
        assert routed(client, alice) == ["gw-a"]


def test_an_unopenable_sqlite_database_is_a_503_on_both_paths(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The fast path and the declared FastAPI route answer it byte for byte alike."""
    answers: list[tuple[Any, bytes]] = []
    for fast_route in (True, False):
        # A directory is not a database file: SQLite cannot open it.
        settings = settings_for(f"sqlite:///{tmp_path}", clock=clock)
        with TestClient(create_app(settings, fast_route=fast_route)) as client:
            response = client.get("/v1/route", params={"token": forged("acme")})
            assert response.status_code == 503
            assert response.json() == {"detail": UNAVAILABLE}
            assert response.headers["retry-after"] == "1"
            assert metric(client, FAILURES) == 1
            counter = (
                'cirno_control_http_requests_total{method="GET",route="/v1/route",status="503"}'
            )
            assert metric(client, counter) == 1
            answers.append((response.headers.raw, response.content))
    assert answers[0] == answers[1]


def test_admin_routes_answer_503_while_mysql_is_unreachable(
    proxied_mysql: tuple[TcpProxy, str], clock: FakeClock
) -> None:
    """A clear, retryable 503 instead of a 500; the same request works once it is back."""
    proxy, url = proxied_mysql
    tenant = {"id": "acme", "name": "Acme"}
    with TestClient(create_app(settings_for(url, clock=clock))) as client:
        assert client.get("/v1/tenants", headers=ADMIN).status_code == 200
        proxy.cut()
        for method, path, body in (
            ("POST", "/v1/tenants", tenant),
            ("GET", "/v1/tenants", None),
            ("GET", "/v1/regions", None),
        ):
            response = client.request(method, path, json=body, headers=ADMIN)
            assert response.status_code == 503, (method, path, response.text)
            assert response.json() == {"detail": DATABASE_UNAVAILABLE}
            assert response.headers["retry-after"] == "1"
        proxy.restore()
        assert client.post("/v1/tenants", json=tenant, headers=ADMIN).status_code == 201


def test_an_unopenable_sqlite_database_is_a_503_on_admin_routes(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path}", clock=clock)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
        assert response.status_code == 503
        assert response.json() == {"detail": DATABASE_UNAVAILABLE}
