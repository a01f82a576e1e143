"""``python -m control_plane``: migrates, then serves over a real socket."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cirno.harness.ports import free_port
from control_plane.migrate import PROJECT_ROOT
from tests.control_plane.geo import US_V4

pytestmark = pytest.mark.e2e


def test_serves_a_migrated_database(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "CIRNO_DATA_DIR": str(tmp_path / "data"),
        "CIRNO_ADMIN_TOKEN": "e2e-admin",
        "CIRNO_CLUSTER_SECRET": "e2e-cluster",
        "CIRNO_CONTROL_PORT": str(port),
    }
    env.pop("CIRNO_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "control_plane"], cwd=tmp_path, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the control plane exited"
                assert time.monotonic() < deadline, "the control plane did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        created = httpx.post(
            f"{base}/v1/tenants",
            json={"id": "e2e", "name": "E2E"},
            headers={"Authorization": "Bearer e2e-admin"},
        )
        assert created.status_code == 201
        assert (tmp_path / "data" / "control.db").is_file()
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[str]:
    """``python -m control_plane`` on a free port with ``env``; yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "CIRNO_DATABASE_URL": f"sqlite:///{tmp_path}/control.db",
        "CIRNO_ADMIN_TOKEN": "e2e-admin",
        "CIRNO_CLUSTER_SECRET": "e2e-cluster",
        "CIRNO_CONTROL_PORT": str(port),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "control_plane"], cwd=tmp_path, env=environment
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the control plane exited"
                assert time.monotonic() < deadline, "the control plane did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize(("trusted", "country"), [("", None), ("127.0.0.1/32", "US")])
def test_route_over_a_real_socket_believes_only_trusted_proxies(
    tmp_path: Path, geoip_db: Path, trusted: str, country: str | None
) -> None:
    """``X-Forwarded-For`` from the loopback peer counts only when it is a trusted proxy
    (the server must not apply its own proxy-header rules before the route's)."""
    env = {"CIRNO_GEOIP_DB": str(geoip_db), "CIRNO_TRUSTED_PROXIES": trusted}
    with serving(tmp_path, **env) as base, httpx.Client(base_url=base) as client:
        admin = {"Authorization": "Bearer e2e-admin"}
        tenant = {"id": "e2e", "name": "E2E"}
        assert client.post("/v1/tenants", json=tenant, headers=admin).status_code == 201
        region = {"id": "eu", "name": "EU", "countries": ["DE"]}
        assert client.post("/v1/regions", json=region, headers=admin).status_code == 201
        heartbeat = {
            "id": "gw-1",
            "role": "gateway",
            "zone": "eu-a",
            "region": "eu",
            "version": "1",
            "ws_url": "ws://gw-1/",
            "connections": 0,
            "capacity": 10,
        }
        beat = client.post(
            "/internal/v1/nodes/heartbeat",
            json=heartbeat,
            headers={"X-Cirno-Cluster-Secret": "e2e-cluster"},
        )
        assert beat.status_code == 200
        minted = client.post("/v1/tenants/e2e/tokens", json={"account": "alice"}, headers=admin)
        token = minted.json()["token"]

        answer = client.get(f"/v1/route?token={token}", headers={"X-Forwarded-For": US_V4})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert (body["country"], body["region"]) == (country, "eu")
        assert body["geo"] == ("db" if country else "none")
        assert [g["id"] for g in body["gateways"]] == ["gw-1"]
        refused = client.get("/v1/route", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        metrics = client.get("/metrics").text
        assert 'route="/v1/route",status="200"} 1.0' in metrics
        assert 'route="/v1/route",status="401"} 1.0' in metrics


def test_a_database_in_the_data_dir_is_picked_up_and_the_answer_says_why_it_fell_back(
    tmp_path: Path, geoip_db: Path
) -> None:
    """No ``CIRNO_GEOIP_DB``: ``$CIRNO_DATA_DIR/geoip/*.mmdb`` is used. A 100 % canary
    rule with no canary gateway: the answer names the rule and why it fell back."""
    data_dir = tmp_path / "data"
    (data_dir / "geoip").mkdir(parents=True)
    shutil.copy(geoip_db, data_dir / "geoip" / "dbip-city-lite.mmdb")
    env = {
        "CIRNO_GEOIP_DB": "",
        "CIRNO_DATA_DIR": str(data_dir),
        "CIRNO_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    with serving(tmp_path, **env) as base, httpx.Client(base_url=base) as client:
        admin = {"Authorization": "Bearer e2e-admin"}
        assert client.post("/v1/tenants", json={"id": "e2e", "name": "E"}, headers=admin).is_success
        region = {"id": "us", "name": "US", "countries": ["US"]}
        assert client.post("/v1/regions", json=region, headers=admin).status_code == 201
        rule = {"id": "all-canary", "priority": 1, "percent": 100, "gateway_pool": "canary"}
        assert client.post("/v1/grayscale/rules", json=rule, headers=admin).status_code == 201
        heartbeat = {
            "id": "gw-1",
            "role": "gateway",
            "zone": "us-a",
            "region": "us",
            "version": "1",
            "ws_url": "ws://gw-1/",
            "connections": 0,
            "capacity": 10,
        }
        secret = {"X-Cirno-Cluster-Secret": "e2e-cluster"}
        assert client.post(
            "/internal/v1/nodes/heartbeat", json=heartbeat, headers=secret
        ).is_success
        minted = client.post("/v1/tenants/e2e/tokens", json={"account": "alice"}, headers=admin)
        token = minted.json()["token"]
        answer = client.get(f"/v1/route?token={token}", headers={"X-Forwarded-For": US_V4})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["country"], body["geo"], body["region"]) == ("US", "db", "us")
    assert (body["pool"], body["fallback"], body["rule"]) == ("stable", True, "all-canary")
    assert body["fallback_reason"] == "no live gateway in pool canary of region us"
