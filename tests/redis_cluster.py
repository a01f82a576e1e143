"""A real 3-master Redis Cluster started from the installed ``redis-server``.

Used by the Redis Cluster variants of the contract suites (and by the scale-out tests).
Each master runs on a free port with its own directory; the cluster is created with
``redis-cli --cluster create`` and torn down (SHUTDOWN NOSAVE) afterwards.
:func:`redis_cluster_nodes` also hands out the masters' processes, for the fault tests
that freeze (SIGSTOP), kill and restart one of them on its own port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import services_required


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


@dataclass
class ClusterNodes:
    """The masters of a running test cluster, by port; ``url`` names the first one.

    ``extra_args`` are the ``redis-server`` options every master was started with
    beyond the fixed ones, so :meth:`start` brings a killed master back the same way
    (same port, same directory and ``nodes.conf``, so the same node id and slots).
    """

    directory: Path
    ports: list[int]
    extra_args: list[str]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, port: int) -> None:
        """Start (or restart) the master on ``port`` and wait until it answers."""
        node_dir = self.directory / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--save", "",
                "--dir", str(node_dir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: _redis_cli(port, "ping").strip() == "PONG")

    def freeze(self, port: int) -> None:
        """SIGSTOP the master: its sockets stay open, it answers nothing."""
        os.kill(self.processes[port].pid, signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        """SIGCONT a frozen master."""
        os.kill(self.processes[port].pid, signal.SIGCONT)

    def kill(self, port: int) -> None:
        """SIGKILL the master and reap it."""
        process = self.processes[port]
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # a frozen one cannot terminate
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def redis_cluster_nodes(
    directory: Path, masters: int = 3, extra_args: list[str] | None = None
) -> Iterator[ClusterNodes]:
    """Start a ``masters``-node cluster, each master run with ``extra_args``."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        reason = "redis-server/redis-cli are not installed: Redis Cluster variant skipped"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    # Cluster bus ports are port + 10000: keep ports low enough for that.
    ports: list[int] = []
    while len(ports) < masters:
        port = _free_port()
        if port < 55000 and port not in ports:
            ports.append(port)
    nodes = ClusterNodes(directory, ports, extra_args or ["--appendonly", "no"])
    try:
        for port in ports:
            nodes.start(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _wait(lambda p=port: "cluster_state:ok" in _redis_cli(p, "cluster", "info"))
        yield nodes
    finally:
        nodes.stop_all()


@contextmanager
def redis_cluster(directory: Path, masters: int = 3) -> Iterator[str]:
    """Start a ``masters``-node cluster; yield a ``redis+cluster://`` URL of one node."""
    with redis_cluster_nodes(directory, masters) as nodes:
        yield nodes.url


def _wait(check: object, timeout: float = 30.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (subprocess.SubprocessError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError("Redis Cluster did not become ready")
