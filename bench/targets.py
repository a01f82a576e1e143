"""The systems under test, each started as real processes on free loopback ports.

- ``sqlite``: the all-in-one default, ``cirno up`` (SQLite files, in-memory sessions);
- ``mysql``: ``cirno control|logic|gateway`` as separate processes (1 logic node,
  1 gateway) on MariaDB/MySQL and Redis, with a fresh ``cirno_bench_<random>`` database
  (dropped afterwards) and a unique Redis key prefix (deleted afterwards);
- ``relay``: the bare relay baseline of :mod:`bench.relay` (no storage).

Each is a context manager yielding a :class:`Target`: where clients connect and how
they get a login token. The cirno targets reuse the end-to-end harness
(:mod:`cirno.harness`), so the benchmark runs exactly what the tests run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from bench.client import wait_login_ready
from bench.procs import children, find_by_name, role_of
from cirno.harness import free_port, make_token, run_cluster, run_topology

TENANT = "bench"
SECRET = "bench-secret-0123456789-abcdefghijklmnop"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REPO_ROOT = Path(__file__).resolve().parents[1]
CAPACITY_LIMITS = {
    "CIRNO_COMMANDS_PER_SECOND": "0",
    "CIRNO_ACCOUNT_COMMANDS_PER_SECOND": "0",
    "CIRNO_LOGINS_PER_IP_PER_SECOND": "0",
    "CIRNO_TENANT_LOGINS_PER_SECOND": "0",
    "CIRNO_MAX_IN_FLIGHT": "0",
}
"""The benchmarks measure capacity: thousands of clients from one address, each as fast
as it can. The per-client limits that protect a shared deployment (docs/operations.md)
are turned off explicitly for them; the bounds on memory stay."""


@dataclass(frozen=True)
class Target:
    """A running system: its WebSocket URL and how to mint a login token."""

    name: str
    description: str
    ws_url: str
    token_for: Callable[[str], str]
    durable: bool
    processes: dict[str, int] = field(default_factory=dict)
    """Server-side processes whose CPU time a run reports, by name."""
    details: dict[str, Any] = field(default_factory=dict)


def cirno_token(account: str) -> str:
    """A login token of the benchmark tenant for ``account`` (valid for an hour)."""
    return make_token(TENANT, account, SECRET, ttl=3600)


def _wait_tenant(ws_url: str) -> None:
    """Block until the gateway accepts logins of the just created tenant."""
    anyio.run(
        wait_login_ready,
        ws_url,
        cirno_token("bench-probe"),
        backend="asyncio",
        backend_options={"use_uvloop": True},
    )


@contextmanager
def cirno_sqlite(tmp: Path, code: Path | None = None) -> Iterator[Target]:
    """``cirno up`` on the embedded default, with a fresh data directory under ``tmp``.

    ``code`` runs another checkout's cirno instead of this one (``bench.run --before``:
    the "before" of a before/after comparison in the same run); its target is ``before``.
    """
    # ``python -m`` puts the working directory first on sys.path; PYTHONSAFEPATH stops
    # that, so the processes import the checkout named here and no other.
    overrides = {"PYTHONPATH": str(code or REPO_ROOT), "PYTHONSAFEPATH": "1"}
    with run_cluster(tmp, **CAPACITY_LIMITS, **overrides) as cluster:
        cluster.create_tenant(TENANT, SECRET)
        _wait_tenant(cluster.ws_url)
        yield Target(
            name="sqlite" if code is None else "before",
            description="cirno up: SQLite (WAL) + in-memory sessions, 1 logic node, 1 gateway"
            + ("" if code is None else f", code of {code}"),
            ws_url=cluster.ws_url,
            token_for=cirno_token,
            durable=True,
            processes={role_of(pid): pid for pid in children(cluster.process.pid)},
            details={"data_dir": str(cluster.data_dir)},
        )


def _named_children(pid: int) -> dict[str, int]:
    """Children of ``pid`` by role, numbered when a role repeats (``logic-2``)."""
    named: dict[str, int] = {}
    for child in sorted(children(pid)):
        role = role_of(child)
        name, n = role, 1
        while name in named:
            n += 1
            name = f"{role}-{n}"
        named[name] = child
    return named


@contextmanager
def cirno_workers(
    tmp: Path, redis_url: str, workers: int = 2, mysql_url: str | None = None
) -> Iterator[Target]:
    """``cirno up --workers N`` with Redis sessions (own key prefix, deleted afterwards):
    N logic nodes and N gateways sharing the client port. Messages go to SQLite (WAL),
    or with ``mysql_url`` to a fresh MySQL database there (target ``workersN-mysql``)."""
    with ExitStack() as stack:
        prefix = f"cirnobench:{uuid.uuid4().hex[:8]}"
        stack.callback(_delete_redis_prefix, redis_url, prefix)
        overrides = {
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONSAFEPATH": "1",
            "CIRNO_WORKERS": str(workers),
            "CIRNO_SESSION_URL": redis_url,
            "CIRNO_SESSION_PREFIX": prefix,
        }
        name, store = f"workers{workers}", "SQLite (WAL)"
        watched = ["redis-server"]
        if mysql_url is not None:
            overrides["CIRNO_MESSAGE_DATABASE_URL"] = stack.enter_context(
                fresh_mysql_database(mysql_url)
            )
            name, store = f"{name}-mysql", "MySQL (InnoDB)"
            watched += ["mariadbd", "mysqld"]
        cluster = stack.enter_context(run_cluster(tmp, **CAPACITY_LIMITS, **overrides))
        cluster.create_tenant(TENANT, SECRET)
        _wait_tenant(cluster.ws_url)
        yield Target(
            name=name,
            description=f"cirno up --workers {workers}: {store} + Redis sessions, "
            f"{workers} logic nodes, {workers} gateways on one port",
            ws_url=cluster.ws_url,
            token_for=cirno_token,
            durable=True,
            processes={**_named_children(cluster.process.pid), **find_by_name(watched)},
            details={"data_dir": str(cluster.data_dir), "redis_prefix": prefix},
        )


def _mysql_connect(url: str) -> Any:
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )


@contextmanager
def fresh_mysql_database(base_url: str) -> Iterator[str]:
    """Create ``cirno_bench_<random>`` on the server of ``base_url``; drop it afterwards."""
    name = f"cirno_bench_{uuid.uuid4().hex[:10]}"
    conn = _mysql_connect(base_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        parts = urlsplit(base_url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def _delete_redis_prefix(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


def _mysql_server_info(url: str) -> dict[str, Any]:
    conn = _mysql_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@sync_binlog, "
                "@@innodb_buffer_pool_size"
            )
            version, flush, sync_binlog, pool = cur.fetchone()
    finally:
        conn.close()
    return {
        "server": version,
        "innodb_flush_log_at_trx_commit": int(flush),
        "sync_binlog": int(sync_binlog),
        "innodb_buffer_pool_size": int(pool),
    }


@contextmanager
def cirno_mysql_redis(tmp: Path, mysql_url: str, redis_url: str) -> Iterator[Target]:
    """Separate control, logic and gateway processes on MySQL and Redis."""
    prefix = f"cirnobench:{uuid.uuid4().hex[:8]}"
    with (
        fresh_mysql_database(mysql_url) as database_url,
        run_topology(
            tmp,
            database_url=database_url,
            session_url=redis_url,
            session_prefix=prefix,
            logic_nodes=1,
            gateways=1,
            extra_env=CAPACITY_LIMITS,
        ) as topology,
    ):
        try:
            topology.create_tenant(TENANT, SECRET)
            _wait_tenant(topology.ws_urls[0])
            yield Target(
                name="mysql",
                description="cirno control|logic|gateway: MySQL (InnoDB) + Redis sessions, "
                "1 logic node, 1 gateway",
                ws_url=topology.ws_urls[0],
                token_for=cirno_token,
                durable=True,
                processes={
                    **{name: p.pid for name, p in topology.processes.items()},
                    **find_by_name(["mariadbd", "mysqld", "redis-server"]),
                },
                details={"mysql": _mysql_server_info(mysql_url), "redis_prefix": prefix},
            )
        finally:
            _delete_redis_prefix(redis_url, prefix)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_ports(processes: list[subprocess.Popen[bytes]], ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not all(_port_open(port) for port in ports):
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            raise RuntimeError(f"the relay did not come up:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


@contextmanager
def bare_relay(tmp: Path) -> Iterator[Target]:
    """The two relay processes of :mod:`bench.relay`."""
    back_port, ws_port = free_port(), free_port()
    log = tmp / "relay.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    commands = [
        ["back", "--port", str(back_port)],
        ["front", "--ws-port", str(ws_port), "--back", f"127.0.0.1:{back_port}"],
    ]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with log.open("wb") as out:
            for index, args in enumerate(commands):
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.relay", *args],
                        cwd=REPO_ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
                _wait_ports(processes, [back_port, ws_port][: index + 1], log)
        yield Target(
            name="relay",
            description="bare relay: 2 asyncio processes (WS front, TCP back), no storage",
            ws_url=f"ws://127.0.0.1:{ws_port}/",
            token_for=lambda account: account,
            durable=False,
            processes={"relay-back": processes[0].pid, "relay-front": processes[1].pid},
        )
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
