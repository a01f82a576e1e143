"""``cirno up``: the all-in-one, started in dependency order and stopped in reverse.

Theory of operation
-------------------
1. **Ports first.** Every port the three processes will listen on is bound once, here,
   before anything starts. A busy port (or one given to two roles) is reported as one
   line naming the port, its role and the flag and variable that move it, and nothing
   starts (exit status 2).
2. **Dependency order.** The control plane starts first and must answer ``/healthz``;
   then the logic node, until its ``/readyz`` answers 200 (it listens for gateway links
   and the control plane's registry has its heartbeat); then the gateway, until its
   ``/readyz`` answers 200 (linked to the logic node, registered) and both client ports
   accept connections (``data_plane/probes.py``).
   Only then is "cirno-im is up" printed: at that moment a client can log in. A child
   that exits, a signal, or ``READY_TIMEOUT`` ends the start-up and stops what runs.
3. **Reverse stop.** On Ctrl-C or SIGTERM the gateway stops first (its clients are
   closed, its links end on purpose), then the logic node, then the control plane,
   each waited for before the next is signalled: no process ever sees a peer vanish,
   so a normal stop logs no "link lost" warnings.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT = 40.0
POLL_SECONDS = 0.1

Children = dict[str, subprocess.Popen[bytes]]


@dataclass(frozen=True, slots=True)
class PortUse:
    """A port ``cirno up`` will listen on, and how a user moves it."""

    port: int
    role: str
    flag: str
    env: str


def planned_ports(args: argparse.Namespace) -> list[PortUse]:
    """Every listening port of the all-in-one, from its flags."""
    return [
        PortUse(args.control_port, "control plane (REST)", "--control-port", "CIRNO_CONTROL_PORT"),
        PortUse(args.ws_port, "gateway WebSocket", "--ws-port", "CIRNO_GATEWAY_WS_PORT"),
        PortUse(args.tcp_port, "gateway TCP", "--tcp-port", "CIRNO_GATEWAY_TCP_PORT"),
        PortUse(args.logic_port, "logic node (gateway links)", "--logic-port", "CIRNO_LOGIC_PORT"),
        PortUse(
            args.gateway_metrics_port,
            "gateway metrics",
            "--gateway-metrics-port",
            "CIRNO_GATEWAY_METRICS_PORT",
        ),
        PortUse(
            args.logic_metrics_port,
            "logic node metrics",
            "--logic-metrics-port",
            "CIRNO_LOGIC_METRICS_PORT",
        ),
    ]


def port_problems(host: str, uses: list[PortUse]) -> list[str]:
    """One line per port that cannot be listened on: out of range, given to two roles,
    or busy on ``host``. Empty when every port is free right now."""
    problems: list[str] = []
    seen: dict[int, PortUse] = {}
    for use in uses:
        move = f"move it with {use.flag} or {use.env}"
        if not 1 <= use.port <= 65535:
            problems.append(f"port {use.port} ({use.role}) is not in 1..65535: {move}")
        elif use.port in seen:
            first = seen[use.port]
            problems.append(f"port {use.port} is given to both {first.role} and {use.role}: {move}")
        elif not _bindable(host, use.port):
            problems.append(f"port {use.port} ({use.role}) is in use on {host}: {move}")
        seen.setdefault(use.port, use)
    return problems


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The servers set SO_REUSEADDR too: a port in TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def up_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment the three processes share (prints a generated admin token)."""
    env = dict(os.environ)
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    host = args.host
    env.update(
        {
            "CIRNO_DATA_DIR": str(data_dir),
            "CIRNO_CONTROL_HOST": host,
            "CIRNO_CONTROL_PORT": str(args.control_port),
            "CIRNO_CONTROL_URL": f"http://{_dial_host(host)}:{args.control_port}",
            "CIRNO_GATEWAY_WS_HOST": host,
            "CIRNO_GATEWAY_WS_PORT": str(args.ws_port),
            "CIRNO_GATEWAY_TCP_HOST": host,
            "CIRNO_GATEWAY_TCP_PORT": str(args.tcp_port),
            "CIRNO_LOGIC_HOST": host,
            "CIRNO_LOGIC_PORT": str(args.logic_port),
            "CIRNO_LOGIC_ADDRS": f"{_dial_host(host)}:{args.logic_port}",
            "CIRNO_GATEWAY_METRICS_PORT": str(args.gateway_metrics_port),
            "CIRNO_LOGIC_METRICS_PORT": str(args.logic_metrics_port),
            # The console's charts scrape both processes.
            "CIRNO_METRICS_TARGETS": f"http://{_dial_host(host)}:{args.gateway_metrics_port}"
            f"/metrics,http://{_dial_host(host)}:{args.logic_metrics_port}/metrics",
            "CIRNO_LOG_FORMAT": args.log_format,
        }
    )
    env.setdefault("CIRNO_DATABASE_URL", f"sqlite:///{data_dir}/control.db")
    env.setdefault("CIRNO_MESSAGE_DATABASE_URL", f"sqlite:///{data_dir}/messages.db")
    env.setdefault("CIRNO_SESSION_URL", "memory://")
    env.setdefault("CIRNO_GATEWAY_ID", "gw-1")
    env.setdefault("CIRNO_LOGIC_ID", "logic-1")
    env.pop("CIRNO_LOGIC_SERVICES", None)  # the all-in-one's one node runs every service
    if not env.get("CIRNO_CLUSTER_SECRET"):
        env["CIRNO_CLUSTER_SECRET"] = secrets.token_urlsafe(32)
    if not env.get("CIRNO_ADMIN_TOKEN"):
        env["CIRNO_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        print(f"CIRNO_ADMIN_TOKEN (generated): {env['CIRNO_ADMIN_TOKEN']}", flush=True)
    return env


def _dial_host(host: str) -> str:
    """Where a local client reaches a listener bound to ``host`` (wildcards: loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


class StartFailed(Exception):
    """The all-in-one did not come up; the message says which stage and why."""


class Supervisor:
    """The three children, started in dependency order and stopped in reverse."""

    def __init__(self, env: dict[str, str], stopping: Callable[[], bool]) -> None:
        self._env = env
        self._stopping = stopping
        self.children: Children = {}

    def start(self, role: str) -> None:
        """Start ``cirno <role>`` in its own session (Ctrl-C reaches only ``cirno up``,
        which then stops the children in order)."""
        self.children[role] = subprocess.Popen(
            [sys.executable, "-m", "cirno.cli", role], env=self._env, start_new_session=True
        )

    def await_ready(self, what: str, ready: Callable[[], bool], deadline: float) -> None:
        """Poll ``ready`` until it holds; StartFailed when a child exits, a signal
        arrives or ``deadline`` passes."""
        while not ready():
            for role, child in self.children.items():
                if child.poll() is not None:
                    raise StartFailed(f"{role} exited with status {child.returncode}")
            if self._stopping():
                raise StartFailed("interrupted")
            if time.monotonic() > deadline:
                raise StartFailed(f"{what} within {READY_TIMEOUT:g} s")
            time.sleep(POLL_SECONDS)

    def first_exited(self) -> tuple[str, int] | None:
        """The first child that has exited, with its status."""
        for role, child in self.children.items():
            code = child.poll()
            if code is not None:
                return role, code
        return None

    def stop(self) -> int:
        """SIGTERM the children newest first, each waited for before the next; 0 when
        every one stopped cleanly."""
        worst = 0
        for role, child in reversed(self.children.items()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                code = child.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                print(f"{role} did not stop within {STOP_GRACE_SECONDS:g} s: killed", flush=True)
                child.kill()
                code = child.wait()
            if code not in (0, -signal.SIGTERM):
                worst = 1
        return worst


def answers_http(url: str) -> bool:
    """Whether ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def accepts(host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def up(args: argparse.Namespace) -> int:
    """Run the all-in-one until interrupted; returns the exit status."""
    problems = port_problems(args.host, planned_ports(args))
    if problems:
        for line in problems:
            print(f"cirno up: {line}", file=sys.stderr)
        print("cirno up: nothing was started", file=sys.stderr, flush=True)
        return 2
    stopping = False

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # From here on Ctrl-C is a request to stop in order, never a traceback.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = up_environment(args)
    from control_plane.migrate import upgrade

    upgrade(env["CIRNO_DATABASE_URL"])
    upgrade(env["CIRNO_MESSAGE_DATABASE_URL"])
    supervisor = Supervisor(env, lambda: stopping)
    try:
        _start_in_order(supervisor, args, env)
    except StartFailed as exc:
        print(f"cirno-im failed to start: {exc}; stopping", file=sys.stderr, flush=True)
        supervisor.stop()
        return 1
    host = _dial_host(args.host)
    print(
        f"cirno-im is up: control plane {env['CIRNO_CONTROL_URL']}, "
        f"gateway ws://{host}:{args.ws_port}/ and tcp://{host}:{args.tcp_port}, "
        f"data in {env['CIRNO_DATA_DIR']}. Ctrl-C stops it.",
        flush=True,
    )
    while not stopping:
        exited = supervisor.first_exited()
        if exited is not None:
            print(f"{exited[0]} exited with status {exited[1]}; stopping", flush=True)
            supervisor.stop()
            return 1
        time.sleep(0.2)
    status = supervisor.stop()
    print("cirno-im stopped", flush=True)
    return status


def _start_in_order(supervisor: Supervisor, args: argparse.Namespace, env: dict[str, str]) -> None:
    host = _dial_host(args.host)
    deadline = time.monotonic() + READY_TIMEOUT
    supervisor.start("control")
    health = f"{env['CIRNO_CONTROL_URL']}/healthz"
    supervisor.await_ready(
        "the control plane did not answer /healthz", lambda: answers_http(health), deadline
    )
    supervisor.start("logic")
    # Ready means it listens and is registered: gateways can find it and link.
    # (A bare TCP probe of its link port would log a gateway link that closed.)
    logic_ready = f"http://{host}:{args.logic_metrics_port}/readyz"
    supervisor.await_ready(
        f"the logic node {env['CIRNO_LOGIC_ID']} was not ready (listening and registered)",
        lambda: answers_http(logic_ready),
        deadline,
    )
    supervisor.start("gateway")
    gateway_ready = f"http://{host}:{args.gateway_metrics_port}/readyz"
    supervisor.await_ready(
        "the gateway was not ready (linked to the logic node and registered)",
        lambda: (
            answers_http(gateway_ready)
            and accepts(host, args.ws_port)
            and accepts(host, args.tcp_port)
        ),
        deadline,
    )
