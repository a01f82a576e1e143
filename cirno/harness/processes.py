"""Real processes on free ports: ``cirno up`` (:func:`run_cluster`) and each role as its
own process (:func:`run_topology`), plus the token a tenant backend would mint.

Nothing here is mocked: it runs the same console script a user runs, with its own data
directory, so tests and benchmarks exercise exactly what is deployed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt

from cirno.harness.ports import free_port

ADMIN_TOKEN = "e2e-admin-token"


@dataclass
class Cluster:
    """A running all-in-one and how to reach it."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    control_url: str
    ws_url: str
    tcp_addr: tuple[str, int]
    logic_addr: tuple[str, int]
    metrics_urls: dict[str, str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def admin(self) -> httpx.Client:
        """An HTTP client of the control plane with the admin token."""
        return httpx.Client(
            base_url=self.control_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10.0,
        )

    def create_tenant(self, tenant_id: str, secret: str) -> None:
        """Create a tenant over REST with a known secret."""
        with self.admin() as client:
            answer = client.post(
                "/v1/tenants", json={"id": tenant_id, "name": tenant_id, "secret": secret}
            )
            assert answer.status_code == 201, answer.text

    def log(self) -> str:
        """Everything the processes printed so far."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_cluster(tmp: Path, **env_overrides: str) -> Iterator[Cluster]:
    """Start ``cirno up`` on free ports under ``tmp``; stop it with SIGTERM afterwards."""
    ports = {
        name: free_port()
        for name in ("control", "ws", "tcp", "logic", "gateway_metrics", "logic_metrics")
    }
    data_dir = tmp / "data"
    log_path = tmp / "cirno.log"
    env = dict(os.environ)
    env.update(
        {
            "CIRNO_ADMIN_TOKEN": ADMIN_TOKEN,
            "CIRNO_LOG_LEVEL": "INFO",
            "CIRNO_TENANT_REFRESH_INTERVAL": "0.5",
        }
    )
    env.update(env_overrides)
    env.pop("PYTHONTRACEMALLOC", None)  # a debugging aid of the test process only
    for name in ("CIRNO_DATABASE_URL", "CIRNO_MESSAGE_DATABASE_URL", "CIRNO_SESSION_URL"):
        if name not in env_overrides:
            env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "cirno.cli",
        "up",
        "--data-dir",
        str(data_dir),
        "--control-port",
        str(ports["control"]),
        "--ws-port",
        str(ports["ws"]),
        "--tcp-port",
        str(ports["tcp"]),
        "--logic-port",
        str(ports["logic"]),
        "--gateway-metrics-port",
        str(ports["gateway_metrics"]),
        "--logic-metrics-port",
        str(ports["logic_metrics"]),
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    cluster = Cluster(
        process=process,
        data_dir=data_dir,
        control_url=f"http://127.0.0.1:{ports['control']}",
        ws_url=f"ws://127.0.0.1:{ports['ws']}/",
        tcp_addr=("127.0.0.1", ports["tcp"]),
        logic_addr=("127.0.0.1", ports["logic"]),
        metrics_urls={
            "gateway": f"http://127.0.0.1:{ports['gateway_metrics']}/metrics",
            "logic": f"http://127.0.0.1:{ports['logic_metrics']}/metrics",
        },
        log_path=log_path,
        env=env,
    )
    try:
        _wait_up(cluster)
        yield cluster
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError("cirno up did not stop within 20 s of SIGTERM") from None


def _wait_up(cluster: Cluster, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.process.poll() is not None:
            raise AssertionError(f"cirno up exited early:\n{cluster.log()}")
        if (
            "cirno-im is up" in cluster.log()
            and _port_open(cluster.tcp_addr)
            and _port_open(("127.0.0.1", _ws_port(cluster)))
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"cirno up did not come up in {timeout} s:\n{cluster.log()}")


def _ws_port(cluster: Cluster) -> int:
    return int(cluster.ws_url.rsplit(":", 1)[1].strip("/"))


def _port_open(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=0.5):
            return True
    except OSError:
        return False


def make_token(
    tenant: str, account: str, secret: str, *, ttl: float = 3600, kid: str | None = None
) -> str:
    """A user token as a tenant backend mints it (HS256, claims acc/app/exp)."""
    headers = {"kid": kid} if kid else None
    claims = {"acc": account, "app": tenant, "exp": int(time.time() + ttl)}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


@dataclass
class Topology:
    """Separately started roles: one control plane, M logic nodes, N gateways."""

    processes: dict[str, subprocess.Popen[bytes]]
    control_url: str
    ws_urls: list[str]
    tcp_addrs: list[tuple[str, int]]
    logic_addrs: list[tuple[str, int]]
    log_dir: Path
    env: dict[str, str]

    def create_tenant(self, tenant_id: str, secret: str) -> None:
        """Create a tenant over REST with a known secret."""
        with httpx.Client(
            base_url=self.control_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10.0,
        ) as client:
            answer = client.post(
                "/v1/tenants", json={"id": tenant_id, "name": tenant_id, "secret": secret}
            )
            assert answer.status_code == 201, answer.text

    def logs(self) -> str:
        """Every role's output so far."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def fully_linked(self) -> bool:
        """True once every logic node logged a link from every gateway."""
        gateways = [name.replace("gateway-", "gw-") for name in self.processes if "gateway" in name]
        for name in self.processes:
            if name.startswith("logic-"):
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")
                if not all(f"gateway {gw} linked" in log for gw in gateways):
                    return False
        return True

    def start(self, name: str, role: str, env: dict[str, str]) -> None:
        """Start (or restart) one role process called ``name``."""
        log_file = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cirno.cli", role],
            env={**self.env, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal one process and wait for it; returns its exit status."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout=timeout)


@contextmanager
def run_topology(
    tmp: Path,
    *,
    database_url: str,
    session_url: str,
    session_prefix: str,
    logic_nodes: int = 2,
    gateways: int = 1,
    extra_env: dict[str, str] | None = None,
    logic_env: list[dict[str, str]] | None = None,
    gateway_env: list[dict[str, str]] | None = None,
    discovery: bool = False,
) -> Iterator[Topology]:
    """Start each role as its own ``cirno <role>`` process against real stores.

    ``logic_env`` adds variables per logic node (e.g. its zone); with ``discovery``
    gateways find logic nodes in the control plane's registry instead of a static list.
    """
    from control_plane.migrate import upgrade

    upgrade(database_url)
    control_port = free_port()
    logic_ports = [free_port() for _ in range(logic_nodes)]
    gateway_ports = [(free_port(), free_port()) for _ in range(gateways)]
    env = dict(os.environ)
    env.pop("PYTHONTRACEMALLOC", None)
    env.update(
        {
            "CIRNO_ADMIN_TOKEN": ADMIN_TOKEN,
            "CIRNO_CLUSTER_SECRET": "topology-cluster-secret",
            "CIRNO_LOG_LEVEL": "INFO",
            "CIRNO_DATA_DIR": str(tmp),
            "CIRNO_DATABASE_URL": database_url,
            "CIRNO_MESSAGE_DATABASE_URL": database_url,
            "CIRNO_SESSION_URL": session_url,
            "CIRNO_SESSION_PREFIX": session_prefix,
            "CIRNO_CONTROL_PORT": str(control_port),
            "CIRNO_CONTROL_URL": f"http://127.0.0.1:{control_port}",
            "CIRNO_LOGIC_ADDRS": (
                "" if discovery else ",".join(f"127.0.0.1:{port}" for port in logic_ports)
            ),
            "CIRNO_REGISTRY_POLL_INTERVAL": "0.5",
            "CIRNO_HEARTBEAT_INTERVAL": "1",
            "CIRNO_TENANT_REFRESH_INTERVAL": "0.5",
            **(extra_env or {}),
        }
    )
    topology = Topology(
        processes={},
        control_url=f"http://127.0.0.1:{control_port}",
        ws_urls=[f"ws://127.0.0.1:{ws}/" for ws, _ in gateway_ports],
        tcp_addrs=[("127.0.0.1", tcp) for _, tcp in gateway_ports],
        logic_addrs=[("127.0.0.1", port) for port in logic_ports],
        log_dir=tmp,
        env=env,
    )
    try:
        topology.start("control", "control", {})
        for index, port in enumerate(logic_ports, start=1):
            topology.start(
                f"logic-{index}",
                "logic",
                {
                    "CIRNO_LOGIC_ID": f"logic-{index}",
                    "CIRNO_LOGIC_PORT": str(port),
                    **(logic_env[index - 1] if logic_env else {}),
                },
            )
        for index, (ws, tcp) in enumerate(gateway_ports, start=1):
            topology.start(
                f"gateway-{index}",
                "gateway",
                {
                    "CIRNO_GATEWAY_ID": f"gw-{index}",
                    "CIRNO_GATEWAY_WS_PORT": str(ws),
                    "CIRNO_GATEWAY_TCP_PORT": str(tcp),
                    **(gateway_env[index - 1] if gateway_env else {}),
                },
            )
        deadline = time.monotonic() + 40
        addrs = [*topology.tcp_addrs, *topology.logic_addrs, ("127.0.0.1", control_port)]
        while not (all(_port_open(addr) for addr in addrs) and topology.fully_linked()):
            for name, process in topology.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited early:\n{topology.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"topology did not come up:\n{topology.logs()}")
            time.sleep(0.1)
        yield topology
    finally:
        for name in list(topology.processes):
            try:
                topology.stop(name)
            except subprocess.TimeoutExpired:
                topology.processes[name].kill()
                topology.processes[name].wait()
