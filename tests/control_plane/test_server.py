"""``python -m control_plane``: migrates, then serves over a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from control_plane.migrate import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
