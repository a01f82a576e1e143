"""A gateway's probes when it is alive but not ready, over a real ``cirno gateway``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cirno.harness import free_port


def test_a_gateway_without_logic_node_or_registry_is_alive_but_not_ready(
    tmp_path: Path,
) -> None:
    metrics_port, dead = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        {
            "CIRNO_CLUSTER_SECRET": "probe-secret",
            "CIRNO_CONTROL_URL": f"http://127.0.0.1:{dead}",
            "CIRNO_LOGIC_ADDRS": f"127.0.0.1:{dead}",
            "CIRNO_GATEWAY_WS_PORT": str(free_port()),
            "CIRNO_GATEWAY_TCP_PORT": str(free_port()),
            "CIRNO_GATEWAY_METRICS_PORT": str(metrics_port),
        }
    )
    log = (tmp_path / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "cirno.cli", "gateway"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert gateway.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        ready = httpx.get(f"{base}/readyz", timeout=1)
    finally:
        gateway.terminate()
        gateway.wait(timeout=20)
        log.close()
    assert (health.status_code, health.text) == (200, "ok\n")
    assert ready.status_code == 503
    assert ready.text.splitlines() == [
        "not ready: no link to a logic node that serves logins",
        "not ready: not registered with the control plane",
    ]
