"""``GET /v1/route``: GeoIP → region → grayscale pool → the best live gateways."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.settings import parse_networks
from data_plane.cluster.grayscale import bucket
from tests.control_plane.conftest import ADMIN, ADMIN_TOKEN, CLUSTER, FakeClock, settings_for
from tests.control_plane.geo import DE_V4, DE_V6, FR_V4, JP_V4, UNKNOWN_V4, US_V4, US_V6

SECRET = "route-tests-secret-0123456789abcdef"
AS_ADMIN = {"X-Cirno-Admin-Token": ADMIN_TOKEN}
PROXY = "10.1.2.3"


@dataclass
class Cluster:
    """An app with regions, gateways and a tenant, and helpers to query it."""

    app: FastAPI
    client: TestClient
    clock: FakeClock

    def token(self, account: str, tenant: str = "acme", ttl: int = 3600) -> str:
        response = self.client.post(
            f"/v1/tenants/{tenant}/tokens", json={"account": account, "ttl": ttl}, headers=ADMIN
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def gateway(self, node_id: str, region: str, **fields: Any) -> None:
        body = {
            "id": node_id,
            "role": "gateway",
            "zone": f"{region}-a",
            "region": region,
            "version": "1.0.0",
            "ws_url": f"ws://{node_id}.test:8000/",
            "tcp_addr": f"{node_id}.test:8001",
            "connections": 0,
            "capacity": 100,
            "draining": False,
            **fields,
        }
        response = self.client.post("/internal/v1/nodes/heartbeat", json=body, headers=CLUSTER)
        assert response.status_code == 200, response.text

    def route(
        self, account: str = "alice", *, peer: str | None = None, **params: Any
    ) -> dict[str, Any]:
        response = self.get(account, peer=peer, params=params)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def get(
        self,
        account: str = "alice",
        *,
        peer: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        query = {"token": self.token(account), **(params or {})}
        if "ip" in query:
            headers = {**AS_ADMIN, **(headers or {})}
        client = self.client if peer is None else TestClient(self.app, client=(peer, 40000))
        return client.get("/v1/route", params=query, headers=headers or {})

    def ids(self, answer: dict[str, Any]) -> list[str]:
        return [g["id"] for g in answer["gateways"]]


def regions(client: TestClient) -> None:
    for body in (
        {"id": "eu", "name": "Europe", "countries": ["DE"], "continents": ["EU"]},
        {"id": "us", "name": "US", "countries": ["US"], "continents": ["NA"]},
        {"id": "asia", "name": "Asia", "continents": ["AS"]},
    ):
        assert client.post("/v1/regions", json=body, headers=ADMIN).status_code == 201


@pytest.fixture
def cluster(migrated_url: str, clock: FakeClock, geoip_db: Path) -> Iterator[Cluster]:
    settings = settings_for(
        migrated_url,
        clock=clock,
        geoip_db=str(geoip_db),
        trusted_proxies=parse_networks("10.0.0.0/8, fd00::/8"),
    )
    app = create_app(settings)
    with TestClient(app) as client:
        created = client.post(
            "/v1/tenants", json={"id": "acme", "name": "Acme", "secret": SECRET}, headers=ADMIN
        )
        assert created.status_code == 201
        regions(client)
        cluster = Cluster(app, client, clock)
        cluster.gateway("eu-old", "eu")  # expires below
        clock.advance(20)
        cluster.gateway("eu-1", "eu", connections=50)
        cluster.gateway("eu-2", "eu", connections=10)
        cluster.gateway("eu-3", "eu", connections=90)
        cluster.gateway("eu-drain", "eu", draining=True)
        cluster.gateway("us-1", "us", connections=30)
        cluster.gateway("us-2", "us", connections=5)
        yield cluster


def test_ips_are_routed_to_their_region_least_loaded_first(cluster: Cluster) -> None:
    for ip in (DE_V4, DE_V6):
        answer = cluster.route(ip=ip)
        assert answer["country"] == "DE"
        assert answer["continent"] == "EU"
        assert answer["region"] == "eu"
        assert answer["geo"] == "admin"
        assert answer["pool"] == "stable"
        assert answer["fallback"] is False
        assert cluster.ids(answer) == ["eu-2", "eu-1", "eu-3"]  # never eu-old / eu-drain
        assert answer["gateways"][0] == {
            "id": "eu-2",
            "ws_url": "ws://eu-2.test:8000/",
            "tcp_addr": "eu-2.test:8001",
            "zone": "eu-a",
        }
        assert answer["heartbeat_interval_s"] == 55
        assert answer["reconnect"] == {
            "initial_ms": 500,
            "max_ms": 30000,
            "multiplier": 2.0,
            "jitter": 0.2,
        }
    for ip in (US_V4, US_V6):
        answer = cluster.route(ip=ip)
        assert (answer["country"], answer["region"]) == ("US", "us")
        assert cluster.ids(answer) == ["us-2", "us-1"]


def test_continent_then_default_region(cluster: Cluster) -> None:
    france = cluster.route(ip=FR_V4)
    assert (france["country"], france["continent"], france["region"]) == ("FR", "EU", "eu")
    unknown = cluster.route(ip=UNKNOWN_V4)
    assert (unknown["country"], unknown["region"]) == (None, "eu")  # the default region
    # Asia has no gateway: any live gateway, said so.
    japan = cluster.route(ip=JP_V4)
    assert (japan["country"], japan["region"], japan["fallback"]) == ("JP", "asia", True)
    assert len(japan["gateways"]) == 3
    assert not {"eu-old", "eu-drain"} & set(cluster.ids(japan))


def test_peer_address_is_used_without_proxies(cluster: Cluster) -> None:
    answer = cluster.route(peer=US_V4)
    assert (answer["country"], answer["geo"], answer["region"]) == ("US", "db", "us")
    # Not an IP peer (the default test client): no location, the default region.
    answer = cluster.route()
    assert (answer["country"], answer["geo"], answer["region"]) == (None, "none", "eu")


def test_forwarded_for_only_from_trusted_proxies(cluster: Cluster) -> None:
    spoofed = cluster.get(peer=US_V4, headers={"X-Forwarded-For": DE_V4}).json()
    assert spoofed["country"] == "US"  # an untrusted peer's header is ignored
    garbage = cluster.get(peer=US_V4, headers={"X-Forwarded-For": "not-an-ip"})
    assert garbage.status_code == 200
    assert garbage.json()["country"] == "US"

    proxied = cluster.get(peer=PROXY, headers={"X-Forwarded-For": f"{US_V4}, {DE_V4}"}).json()
    assert (proxied["country"], proxied["geo"]) == ("DE", "db")  # the rightmost hop
    chained = cluster.get(
        peer=PROXY, headers={"X-Forwarded-For": f"{US_V4}, {DE_V4}, 10.9.9.9"}
    ).json()
    assert chained["country"] == "DE"  # trusted hops are skipped
    v6 = cluster.get(peer="fd00::1", headers={"X-Forwarded-For": f"[{US_V6}]:443"}).json()
    assert v6["country"] == "US"

    bad = cluster.get(peer=PROXY, headers={"X-Forwarded-For": f"{DE_V4}, bogus"})
    assert bad.status_code == 400
    assert "X-Forwarded-For" in bad.json()["detail"]


def test_ip_override_needs_the_admin_header(cluster: Cluster) -> None:
    token = cluster.token("alice")
    denied = cluster.client.get("/v1/route", params={"token": token, "ip": DE_V4})
    assert denied.status_code == 403
    assert "X-Cirno-Admin-Token" in denied.json()["detail"]
    wrong = cluster.client.get(
        "/v1/route",
        params={"token": token, "ip": DE_V4},
        headers={"X-Cirno-Admin-Token": "guess"},
    )
    assert wrong.status_code == 403
    for bad_ip in ("999.1.1.1", "example.com", "", "5.9.1.2/24"):
        response = cluster.client.get(
            "/v1/route", params={"token": token, "ip": bad_ip}, headers=AS_ADMIN
        )
        assert response.status_code == 400, bad_ip
        assert "not an IP address" in response.json()["detail"]


def test_answers_are_stable_and_follow_load(cluster: Cluster) -> None:
    first = cluster.route("alice", ip=DE_V4)
    for _ in range(5):
        assert cluster.route("alice", ip=DE_V4) == first
    # Equal loads: accounts spread over the gateways, each account keeps its choice.
    for node in ("eu-1", "eu-2", "eu-3"):
        cluster.gateway(node, "eu", connections=20)
    cluster.clock.advance(2)  # past the snapshot TTL: loads are re-read
    firsts = {cluster.route(f"user{i}", ip=DE_V4)["gateways"][0]["id"] for i in range(30)}
    assert firsts == {"eu-1", "eu-2", "eu-3"}
    assert cluster.route("user7", ip=DE_V4) == cluster.route("user7", ip=DE_V4)
    # Within one 10 % step the order does not change; beyond it, the lighter goes first.
    before = cluster.ids(cluster.route("alice", ip=DE_V4))
    cluster.gateway(before[0], "eu", connections=25)
    cluster.clock.advance(2)
    assert cluster.ids(cluster.route("alice", ip=DE_V4)) == before
    cluster.gateway(before[0], "eu", connections=95)
    cluster.clock.advance(2)
    assert cluster.ids(cluster.route("alice", ip=DE_V4))[-1] == before[0]


def test_expired_and_draining_gateways_are_never_returned(cluster: Cluster) -> None:
    cluster.clock.advance(14)  # eu-* and us-* last beat 14 s ago (TTL 15)
    cluster.gateway("eu-2", "eu", connections=10)
    cluster.gateway("eu-1", "eu", draining=True)
    cluster.clock.advance(2)
    answer = cluster.route(ip=DE_V4)
    assert cluster.ids(answer) == ["eu-2"]
    # Without any live gateway in the region: another region's live gateways, if any.
    cluster.clock.advance(30)
    cluster.gateway("us-2", "us")
    moved = cluster.route(ip=DE_V4)
    assert (moved["region"], moved["fallback"], cluster.ids(moved)) == ("eu", True, ["us-2"])
    cluster.clock.advance(30)
    none = cluster.get(params={"ip": DE_V4})
    assert none.status_code == 503
    assert none.json() == {"detail": "no live gateway"}


def test_grayscale_canary_takes_ten_percent_and_follows_patches(cluster: Cluster) -> None:
    cluster.gateway("eu-canary", "eu", pool="canary", connections=0)
    cluster.gateway("eu-stable", "eu", pool="stable", connections=0)
    rule = {
        "id": "canary",
        "priority": 1,
        "tenant": "acme",
        "percent": 10,
        "gateway_pool": "canary",
    }
    assert cluster.client.post("/v1/grayscale/rules", json=rule, headers=ADMIN).status_code == 201

    accounts = [f"user{i}" for i in range(200)]
    expected = {a for a in accounts if bucket("acme", a) < 10}
    assert 8 <= len(expected) <= 35
    answers = {a: cluster.route(a, ip=DE_V4) for a in accounts}
    canary = {a for a, answer in answers.items() if answer["pool"] == "canary"}
    assert canary == expected
    for account in sorted(canary)[:5]:
        again = cluster.route(account, ip=DE_V4)
        assert again["pool"] == "canary"
        assert cluster.ids(again) == ["eu-canary"]
        assert again["fallback"] is False
    assert all("eu-canary" not in cluster.ids(answers[a]) for a in set(accounts) - canary)

    # Switched at runtime: the answers change at once.
    patched = cluster.client.patch(
        "/v1/grayscale/rules/canary", json={"enabled": False}, headers=ADMIN
    )
    assert patched.status_code == 200
    assert all(cluster.route(a, ip=DE_V4)["pool"] == "stable" for a in sorted(canary)[:5])
    cluster.client.patch(
        "/v1/grayscale/rules/canary", json={"enabled": True, "percent": 100}, headers=ADMIN
    )
    assert cluster.route("anyone", ip=DE_V4)["pool"] == "canary"

    # The canary pool has no gateway in the US: the default pool there, said so.
    us = cluster.route("anyone", ip=US_V4)
    assert (us["pool"], us["fallback"], cluster.ids(us)) == ("stable", True, ["us-2", "us-1"])


def test_grayscale_by_version_and_platform(cluster: Cluster) -> None:
    cluster.gateway("eu-beta", "eu", pool="beta")
    rule = {
        "id": "beta",
        "priority": 1,
        "min_version": "2.0",
        "platforms": ["ios"],
        "gateway_pool": "beta",
    }
    assert cluster.client.post("/v1/grayscale/rules", json=rule, headers=ADMIN).status_code == 201
    assert cluster.route(ip=DE_V4, version="2.1.0", platform="iOS")["pool"] == "beta"
    assert cluster.route(ip=DE_V4, version="1.10.0", platform="ios")["pool"] == "stable"
    assert cluster.route(ip=DE_V4, version="2.1.0", platform="android")["pool"] == "stable"
    assert cluster.route(ip=DE_V4)["pool"] == "stable"


def sign(claims: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token with any header (PyJWT here cannot sign RS256: no cryptography)."""
    segments = (json.dumps(header).encode(), json.dumps(claims).encode(), b"signature")
    return ".".join(base64.urlsafe_b64encode(s).rstrip(b"=").decode() for s in segments)


def test_bad_tokens_are_401_with_a_reason(cluster: Cluster) -> None:
    now = int(cluster.clock.now)
    good = {"acc": "alice", "app": "acme", "exp": now + 600}
    cases = {
        "": "missing token",
        "not.a.jwt": "malformed",
        "x" * 5000: "too long",
        sign(good, "a-foreign-secret-0123456789abcdef"): "signature",
        sign({**good, "app": "globex"}): "unknown tenant",
        sign(good, kid="k9"): "unknown key",
        sign({**good, "exp": now - 1}, kid="k1"): "expired",
        sign({"acc": "alice", "app": "acme"}, kid="k1"): "exp",
        sign({**good, "acc": "a,b"}, kid="k1"): "acc",
        sign({**good, "acc": "alice\n"}, kid="k1"): "acc",
        sign({**good, "app": 7}): "app",
        jwt.encode(good, None, algorithm="none"): "algorithm",
        jwt.encode(good, SECRET * 2, algorithm="HS512"): "algorithm",
        unsigned({"alg": "RS256", "typ": "JWT", "kid": "k1"}, good): "algorithm",
    }
    for token, reason in cases.items():
        response = cluster.client.get("/v1/route", params={"token": token})
        assert response.status_code == 401, (token[:20], response.text)
        assert reason in response.json()["detail"], (reason, response.json())
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert cluster.client.get("/v1/route").status_code == 401
    # Signed by us without a kid: verified against the live keys.
    assert cluster.client.get("/v1/route", params={"token": sign(good)}).status_code == 200


def test_token_in_authorization_header(cluster: Cluster) -> None:
    token = cluster.token("alice")
    response = cluster.client.get("/v1/route", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert (
        cluster.client.get("/v1/route", headers={"Authorization": "Bearer x.y.z"}).status_code
        == 401
    )


def test_overlong_parameters_are_400(cluster: Cluster) -> None:
    token = cluster.token("alice")
    for params in ({"version": "1." * 20}, {"platform": "p" * 33}, {"ip": "1" * 65}):
        response = cluster.client.get(
            "/v1/route", params={"token": token, **params}, headers=AS_ADMIN
        )
        assert response.status_code == 400, params
        assert "longer than" in response.json()["detail"]
    basic = cluster.client.get("/v1/route", headers={"Authorization": f"Basic {token}"})
    assert basic.status_code == 401


def test_expired_tokens_revoked_keys_and_disabled_tenants(cluster: Cluster) -> None:
    token = cluster.token("alice", ttl=60)
    assert cluster.client.get("/v1/route", params={"token": token}).status_code == 200
    cluster.clock.advance(61)
    expired = cluster.client.get("/v1/route", params={"token": token})
    assert expired.status_code == 401
    assert expired.json()["detail"] == "token expired"

    old = cluster.token("bob")
    rotated = cluster.client.post("/v1/tenants/acme/secrets", json={}, headers=ADMIN)
    assert rotated.json()["kid"] == "k2"
    new = cluster.token("bob")
    assert jwt.get_unverified_header(new)["kid"] == "k2"
    for token in (old, new):  # during the overlap both verify
        cluster.gateway("eu-1", "eu")
        assert cluster.client.get("/v1/route", params={"token": token}).status_code == 200
    cluster.client.delete("/v1/tenants/acme/secrets/k1", headers=ADMIN)
    revoked = cluster.client.get("/v1/route", params={"token": old})
    assert revoked.status_code == 401
    assert "unknown key" in revoked.json()["detail"]

    cluster.client.patch("/v1/tenants/acme", json={"status": "disabled"}, headers=ADMIN)
    disabled = cluster.client.get("/v1/route", params={"token": new})
    assert disabled.status_code == 403
    assert "disabled" in disabled.json()["detail"]


def test_ping(cluster: Cluster) -> None:
    assert cluster.client.get("/v1/ping").json() == {"ok": True}
