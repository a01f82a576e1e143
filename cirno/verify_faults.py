"""The faults of ``cirno verify --faults``, on a cluster the harness owns.

Theory of operation
-------------------
:class:`ManagedCluster` starts the ``cirno cluster`` topology (:mod:`cirno.cluster`) on
free ports under a :class:`~cirno.supervisor.Supervisor`: a 3-master Redis Cluster, a
control plane, logic nodes and gateways, with MySQL reached through a
:class:`~cirno.tcp_proxy.TcpProxy` the harness can cut. While traffic runs,
:meth:`ManagedCluster.watch` calls the supervisor every 0.2 s, so a process that dies
is restarted exactly as ``cirno cluster`` would restart it.

Each fault (:data:`FAULTS`) is a real event, checked as it happens; a fault that did
not happen raises :class:`FaultNotReal` rather than passing silently:

- ``logic-kill`` / ``gateway-kill``: SIGKILL a logic node / gateway (the supervisor
  holds it down for ``down`` seconds, then restarts it); evidence: the old pid's exit
  status (-9) and the new pid, once it listens again;
- ``redis-restart``: SIGKILL a Redis Cluster master; after ``down`` seconds it starts
  again on its port with its data directory and ``nodes.conf``, rejoins, and the
  cluster reports ``cluster_state:ok``;
- ``mysql-cut``: the proxy in front of MySQL aborts every connection and refuses new
  ones for ``down`` seconds (default 10); evidence: connections cut, a refused connect;
- ``control-stop``: SIGTERM the control plane, start it again after ``down`` seconds
  (default 30);
- ``gateway-drain``: SIGTERM a gateway, which drains (clients closed with 1001) and
  exits with status 0; restarted after ``down`` seconds.

Each fault returns when the faulty part is back (restarted and answering), so its
``ended`` time is when the outage ended; the harness measures recovery from there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from cirno.cluster import (
    Ports,
    prepare_mysql,
    role_environment,
    start_redis_cluster,
    start_roles,
)
from cirno.harness.ports import free_port
from cirno.supervisor import RestartPolicy, Supervisor
from cirno.tcp_proxy import TcpProxy

READY_TIMEOUT = 60.0


class FaultNotReal(Exception):
    """A fault did not take effect (the process did not die, the proxy cut nothing...)."""


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Fault:
    """A named fault and its default outage (seconds)."""

    name: str
    down: float
    run: Callable[[ManagedCluster, float], Awaitable[dict[str, object]]]


class ManagedCluster:
    """The ``cirno cluster`` topology on free ports, supervised, with MySQL behind a
    proxy; :meth:`start` blocks until everything answers."""

    def __init__(
        self, data_dir: Path, mysql_url: str, *, logic_nodes: int = 3, gateways: int = 2
    ) -> None:
        self.data_dir = data_dir
        self.mysql_url = mysql_url
        self.admin_token = secrets.token_urlsafe(24)
        self.ports = Ports(
            redis=tuple(free_port() for _ in range(3)),
            control=free_port(),
            logic=tuple(free_port() for _ in range(logic_nodes)),
            ws=tuple(free_port() for _ in range(gateways)),
            tcp=tuple(free_port() for _ in range(gateways)),
        )
        # Restarts come quickly (the faults hold a process down themselves).
        self.sup = Supervisor(RestartPolicy(initial=0.2, maximum=5.0), log=self._log)
        self.proxy: TcpProxy | None = None
        self.lines: list[str] = []

    def _log(self, line: str) -> None:
        self.lines.append(line)

    @property
    def ws_urls(self) -> list[str]:
        """The gateways' WebSocket URLs."""
        return [f"ws://127.0.0.1:{port}/" for port in self.ports.ws]

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.control}"

    def start(self) -> None:
        """Prepare MySQL, start Redis, the proxy and every role (blocking)."""
        parts = urlsplit(self.mysql_url)
        prepare_mysql(self.mysql_url)
        self.proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 3306))
        netloc = parts.netloc.rsplit("@", 1)
        auth = f"{netloc[0]}@" if len(netloc) == 2 else ""
        proxied = urlunsplit(
            (parts.scheme, f"{auth}127.0.0.1:{self.proxy.port}", parts.path, parts.query, "")
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        start_redis_cluster("127.0.0.1", self.ports.redis, self.data_dir / "redis", self.sup)
        base = {
            **os.environ,
            "CIRNO_ADMIN_TOKEN": self.admin_token,
            "CIRNO_SESSION_PREFIX": f"verify{secrets.token_hex(3)}",
            "CIRNO_REGISTRY_POLL_INTERVAL": "0.5",
            "CIRNO_HEARTBEAT_INTERVAL": "1",
            "CIRNO_TENANT_REFRESH_INTERVAL": "0.5",
            "CIRNO_LOCATION_REFRESH_INTERVAL": "2",
        }
        args = argparse.Namespace(host="127.0.0.1", data_dir=str(self.data_dir))
        env = role_environment(args, self.ports, proxied, base)
        self.lines += start_roles(env, self.ports, self.sup, log_dir=self.data_dir)

    def create_tenant(self, tenant: str, secret: str) -> None:
        """Create ``tenant`` with ``secret`` through the control plane's admin API (one
        that exists already is kept: MySQL outlives the cluster)."""
        answer = httpx.post(
            f"{self.control_url}/v1/tenants",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            json={"id": tenant, "name": tenant, "secret": secret},
            timeout=10.0,
        )
        if answer.status_code not in (201, 409):
            raise RuntimeError(f"creating tenant {tenant}: {answer.status_code} {answer.text}")

    async def watch(self) -> None:
        """Let the supervisor restart what died, every 0.2 s, until cancelled."""
        while True:
            self.sup.check()
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop every process and the proxy."""
        self.sup.stop(grace=10.0)
        if self.proxy is not None:
            self.proxy.close()

    # -- building blocks of the faults ---------------------------------------------------

    async def _outage(self, name: str, sig: signal.Signals, down: float) -> dict[str, object]:
        """Send ``sig`` to ``name``, keep it down ``down`` s, let the supervisor restart it."""
        process = self.sup.hold(name)
        old_pid = process.pid
        process.send_signal(sig)
        try:
            status = await asyncio.to_thread(process.wait, 15.0)
        except subprocess.TimeoutExpired as exc:
            raise FaultNotReal(f"{name} (pid {old_pid}) did not exit after {sig.name}") from exc
        await asyncio.sleep(down)
        self.sup.release(name)
        await self._until(lambda: self.sup.children[name].process.pid != old_pid, f"{name} back")
        new_pid = self.sup.children[name].process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_pid, 0)
            raise FaultNotReal(f"{name}'s old pid {old_pid} still exists")
        return {"process": name, "old_pid": old_pid, "status": status, "new_pid": new_pid}

    async def _until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not await asyncio.to_thread(ready):
            if time.monotonic() > deadline:
                raise FaultNotReal(f"{what}: not within {READY_TIMEOUT:g} s")
            await asyncio.sleep(0.1)

    async def kill_logic(self, down: float) -> dict[str, object]:
        evidence = await self._outage("logic-2", signal.SIGKILL, down)
        await self._until(lambda: _port_open(self.ports.logic[1]), "logic-2 listening")
        return evidence

    async def kill_gateway(self, down: float) -> dict[str, object]:
        evidence = await self._outage("gw-1", signal.SIGKILL, down)
        await self._until(lambda: _port_open(self.ports.ws[0]), "gw-1 listening")
        return evidence

    async def drain_gateway(self, down: float) -> dict[str, object]:
        evidence = await self._outage("gw-2", signal.SIGTERM, down)
        if evidence["status"] != 0:
            raise FaultNotReal(f"gw-2 did not drain cleanly: {evidence}")
        await self._until(lambda: _port_open(self.ports.ws[-1]), "gw-2 listening")
        return evidence

    async def stop_control(self, down: float) -> dict[str, object]:
        evidence = await self._outage("control", signal.SIGTERM, down)
        health = f"{self.control_url}/healthz"
        await self._until(lambda: _healthy(health), "the control plane answering")
        return evidence

    async def restart_redis(self, down: float) -> dict[str, object]:
        port = self.ports.redis[1]
        evidence = await self._outage(f"redis-{port}", signal.SIGKILL, down)
        await self._until(lambda: _cluster_ok(port), f"redis-{port} rejoined")
        evidence["cluster_state"] = "ok"
        return evidence

    async def cut_mysql(self, down: float) -> dict[str, object]:
        proxy = self.proxy
        assert proxy is not None
        cut = await asyncio.to_thread(proxy.cut)
        refused = not await asyncio.to_thread(_port_open, proxy.port)
        if not refused:
            raise FaultNotReal("the MySQL proxy still accepts connections after the cut")
        await asyncio.sleep(down)
        await asyncio.to_thread(proxy.restore)
        return {"connections_cut": cut, "connect_refused": refused}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _cluster_ok(port: int) -> bool:
    try:
        info = subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return False
    return "cluster_state:ok" in info


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault("logic-kill", 15.0, ManagedCluster.kill_logic),
        Fault("gateway-kill", 15.0, ManagedCluster.kill_gateway),
        Fault("redis-restart", 8.0, ManagedCluster.restart_redis),
        Fault("mysql-cut", 10.0, ManagedCluster.cut_mysql),
        Fault("control-stop", 30.0, ManagedCluster.stop_control),
        Fault("gateway-drain", 15.0, ManagedCluster.drain_gateway),
    )
}
"""Every fault by name, in the order ``--faults all`` runs them."""


def parse_faults(raw: str) -> list[Fault]:
    """``all`` or a comma-separated list of names from :data:`FAULTS`."""
    if raw.strip() == "all":
        return list(FAULTS.values())
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; choose from {', '.join(FAULTS)} or all")
    return [FAULTS[name] for name in names]
