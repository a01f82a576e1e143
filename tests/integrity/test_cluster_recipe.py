"""``cirno cluster`` on free ports: Redis Cluster + MySQL, 3 logic nodes, 2 gateways.

Starts the recipe as a user would (the console entry point, a fresh data directory, a
database name that does not exist yet), chats across its two gateways through the SDK,
SIGKILLs a Redis master and a logic node and sees the supervisor bring both back (the
Redis node rejoins its cluster from its ``nodes.conf``), chats again, and stops it with
SIGTERM, all within a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from cirno.harness import free_port, make_token
from cirno_sdk import Client
from tests.services import MYSQL_ENV, service_url, services_required

pytestmark = [pytest.mark.e2e, pytest.mark.mysql]

ADMIN = "recipe-admin-token"
TENANT = "recipe"
SECRET = "recipe-tenant-secret-0123456789-abcdef"


def low_port() -> int:
    """A free port whose Redis Cluster bus port (port + 10000) is valid too."""
    while (port := free_port()) >= 55000:
        pass
    return port


@pytest.fixture
def database_url() -> Iterator[str]:
    """A ``mysql://`` URL naming a database that does not exist yet (dropped after)."""
    import pymysql

    base = urlsplit(service_url(MYSQL_ENV))
    name = f"cirno_recipe_{uuid.uuid4().hex[:10]}"
    yield urlunsplit((base.scheme, base.netloc, f"/{name}", "", ""))
    conn = pymysql.connect(
        host=base.hostname or "127.0.0.1",
        port=base.port or 3306,
        user=base.username or "root",
        password=base.password or "",
    )
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


async def chat(urls: list[str]) -> None:
    """alice on the first gateway sends to bob on the second."""
    alice_token = make_token(TENANT, "alice", SECRET)
    bob_token = make_token(TENANT, "bob", SECRET)
    async with Client(urls[0], alice_token) as alice, Client(urls[1], bob_token) as bob:
        sent = await alice.send("bob", "across the recipe")
        async with asyncio.timeout(10):
            async for message in bob.messages():
                if message.message_id != sent.message_id:
                    continue  # an earlier run's message, synced again
                # Pushed (body loaded) or synced lazily (body on demand): either way it
                # arrived, and its body is the one sent.
                (loaded,) = await bob.load_contents([message])
                assert loaded.body == "across the recipe"
                break


def process_table(data_dir: Path) -> dict[str, dict[str, int]]:
    """The recipe's ``processes.json``: name -> pid and restart count."""
    table: dict[str, dict[str, int]] = json.loads((data_dir / "processes.json").read_text())
    return table


def cluster_ok(port: int) -> bool:
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True
    ).stdout
    return "cluster_state:ok" in info


def kill_and_see_restarted(data_dir: Path, names: list[str], log_path: Path) -> None:
    """SIGKILL ``names``, then wait until the supervisor has started each one again."""
    before = process_table(data_dir)
    for name in names:
        os.kill(before[name]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        after = process_table(data_dir)
        if all(after[n]["pid"] != before[n]["pid"] and after[n]["restarts"] == 1 for n in names):
            break
        assert time.monotonic() < deadline, log_path.read_text(errors="replace")
        time.sleep(0.1)
    for name in names:
        with pytest.raises(ProcessLookupError):
            os.kill(before[name]["pid"], 0)  # the old one is really gone
        os.kill(after[name]["pid"], 0)  # and the new one runs
        assert f"supervisor: {name} exited with status -9" in log_path.read_text()


def test_cluster_recipe_starts_chats_and_stops(tmp_path: Path, database_url: str) -> None:
    if shutil.which("redis-server") is None:
        if services_required():
            pytest.fail("redis-server is not installed", pytrace=False)
        pytest.skip("redis-server is not installed")
    started = time.monotonic()
    redis = [low_port() for _ in range(3)]
    logic = [free_port() for _ in range(3)]
    ws, tcp = [free_port(), free_port()], [free_port(), free_port()]
    control = free_port()
    env = {
        **os.environ,
        "CIRNO_MYSQL_URL": database_url,
        "CIRNO_ADMIN_TOKEN": ADMIN,
        "CIRNO_TENANT_REFRESH_INTERVAL": "0.5",
    }
    env.pop("PYTHONTRACEMALLOC", None)
    command = [
        sys.executable, "-m", "cirno.cli", "cluster", "--data-dir", str(tmp_path / "data"),
        "--control-port", str(control),
        "--redis-ports", ",".join(map(str, redis)),
        "--logic-ports", ",".join(map(str, logic)),
        "--ws-ports", ",".join(map(str, ws)),
        "--tcp-ports", ",".join(map(str, tcp)),
    ]  # fmt: skip
    log_path = tmp_path / "cluster.log"
    with log_path.open("wb") as log_file:
        recipe = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        while "cirno cluster is up" not in log_path.read_text(errors="replace"):
            assert recipe.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() - started < 25, log_path.read_text(errors="replace")
            time.sleep(0.1)
        output = log_path.read_text(errors="replace")
        assert f"ws://127.0.0.1:{ws[1]}/" in output and f"127.0.0.1:{redis[0]}" in output
        answer = httpx.post(
            f"http://127.0.0.1:{control}/v1/tenants",
            headers={"Authorization": f"Bearer {ADMIN}"},
            json={"id": TENANT, "name": TENANT, "secret": SECRET},
        )
        assert answer.status_code == 201, answer.text
        urls = [f"ws://127.0.0.1:{port}/" for port in ws]
        asyncio.run(chat(urls))
        kill_and_see_restarted(tmp_path / "data", [f"redis-{redis[0]}", "logic-2"], log_path)
        deadline = time.monotonic() + 20
        while not (cluster_ok(redis[0]) and port_open(logic[1])):
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.2)
        asyncio.run(chat(urls))
    finally:
        recipe.send_signal(signal.SIGTERM)
        status = recipe.wait(timeout=30)
    # 1: processes had to be restarted during the run.
    assert status == 1, log_path.read_text(errors="replace")
    assert "cirno cluster stopped" in log_path.read_text(errors="replace")
    assert not any(port_open(port) for port in [*redis, *logic, *ws, *tcp, control])
    assert time.monotonic() - started < 60
