"""``cirno up``: ports checked before anything starts, "up" only once a client can log
in, dependency order on start and the reverse on stop, quietly."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from cirno.harness import ADMIN_TOKEN, free_port, make_token, run_cluster
from tests.cli.cli import cirno
from tests.control_plane.geo import US_V4, write_mmdb

pytestmark = pytest.mark.e2e


def _first(log: list[str], text: str) -> int:
    return next(i for i, line in enumerate(log) if text in line)


def test_up_starts_in_order_and_stops_in_reverse_quietly(tmp_path: Path) -> None:
    with run_cluster(tmp_path) as cluster:
        readyz = cluster.metrics_urls["gateway"].replace("/metrics", "/readyz")
        assert httpx.get(readyz).text == "ready\n"
        started = cluster.log().splitlines()
    log = cluster.log().splitlines()
    assert cluster.process.returncode == 0
    up = _first(started, "cirno-im is up")
    # Dependency order: the control plane answers before the logic node starts, which
    # registers before the gateway starts; "up" comes after the gateway linked.
    assert _first(started, "control[") < _first(started, "logic[") < _first(started, "gateway[")
    assert _first(started, "linked to logic node") < up
    assert _first(started, "gateway gw-1: ws") < up
    # Reverse order on stop, each process gone before the next is told.
    stop = log[len(started) :]
    gateway_stops = _first(stop, "received SIGTERM")
    assert "gateway[" in stop[gateway_stops]
    assert not any("logic[" in line for line in stop[:gateway_stops])
    assert any("logic[" in line and "received SIGTERM" in line for line in stop[gateway_stops:])
    assert stop[-1] == "cirno-im stopped"
    noisy = [line for line in stop if " WARNING " in line or " ERROR " in line or "lost" in line]
    assert noisy == []
    # A normal start warns about nothing either (peers still starting are retried quietly).
    assert [line for line in started if " WARNING " in line or " ERROR " in line] == []
    assert "Traceback" not in cluster.log()


def test_up_refuses_busy_ports_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        shared = free_port()
        data_dir = tmp_path / "data"
        run = cirno(
            "up",
            "--data-dir", str(data_dir),
            "--ws-port", str(busy),
            "--tcp-port", str(free_port()),
            "--control-port", str(shared),
            "--logic-port", str(shared),
            "--gateway-metrics-port", str(free_port()),
            "--logic-metrics-port", str(free_port()),
        )  # fmt: skip
    assert run.code == 2 and "Traceback" not in run.err + run.out, run
    assert "cirno-im is up" not in run.out
    assert run.err.splitlines() == [
        f"cirno up: port {busy} (gateway WebSocket) is in use on 127.0.0.1: "
        "move it with --ws-port or CIRNO_GATEWAY_WS_PORT",
        f"cirno up: port {shared} is given to both control plane (REST) and logic node "
        "(gateway links): move it with --logic-port or CIRNO_LOGIC_PORT",
        "cirno up: nothing was started",
    ]
    assert not data_dir.exists()


def test_up_picks_up_a_geoip_database_from_its_data_dir(tmp_path: Path) -> None:
    geoip = tmp_path / "data" / "geoip"
    geoip.mkdir(parents=True)
    database = write_mmdb(geoip / "dbip-city-lite.mmdb")
    with run_cluster(tmp_path, CIRNO_GEOIP_DB="") as cluster:
        cluster.create_tenant("geo", "geo-secret-0123456789-abcdefghijk")
        token = make_token("geo", "alice", "geo-secret-0123456789-abcdefghijk")
        answer = httpx.get(
            f"{cluster.control_url}/v1/route",
            params={"token": token, "ip": US_V4},
            headers={"X-Cirno-Admin-Token": ADMIN_TOKEN},
        )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["country"], answer.json()["geo"]) == ("US", "admin")
    assert f"GeoIP {database}" in cluster.log()
