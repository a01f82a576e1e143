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
3. **Workers.** ``--workers N`` runs N logic nodes (each its own node: id, link port,
   metrics port) and N gateways sharing the client ports with SO_REUSEPORT, each
   started and awaited in turn; every gateway links to every logic node. More than one
   needs a session store the logic nodes share (Redis): it is refused otherwise.
4. **Reverse stop.** On Ctrl-C or SIGTERM the gateway stops first (its clients are
   closed, its links end on purpose), then the logic node, then the control plane,
   each waited for before the next is signalled: no process ever sees a peer vanish,
   so a normal stop logs no "link lost" warnings.
"""

from __future__ import annotations

import argparse
import functools
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


@dataclass(frozen=True, slots=True)
class Worker:
    """The ports and ids of the ``index``-th logic node and gateway (``--workers``).

    Worker ``i`` (from 0) uses the logic port + ``i`` and each metrics port + 2 ``i`` (the
    defaults 9100 and 9101 interleave); every gateway shares the client ports.
    """

    index: int
    logic_port: int
    logic_metrics_port: int
    gateway_metrics_port: int
    logic_id: str
    gateway_id: str


def workers(args: argparse.Namespace, env: dict[str, str] | None = None) -> list[Worker]:
    """The workers of ``args.workers``; one keeps the configured (or default) ids."""
    count = getattr(args, "workers", 1)
    env = env or {}
    if count == 1:
        ids = [(env.get("CIRNO_LOGIC_ID") or "logic-1", env.get("CIRNO_GATEWAY_ID") or "gw-1")]
    else:
        ids = [(f"logic-{i + 1}", f"gw-{i + 1}") for i in range(count)]
    return [
        Worker(
            i,
            args.logic_port + i,
            args.logic_metrics_port + 2 * i,
            args.gateway_metrics_port + 2 * i,
            *ids[i],
        )
        for i in range(count)
    ]


def planned_ports(args: argparse.Namespace) -> list[PortUse]:
    """Every listening port of the all-in-one, from its flags."""
    uses = [
        PortUse(args.control_port, "control plane (REST)", "--control-port", "CIRNO_CONTROL_PORT"),
        PortUse(args.ws_port, "gateway WebSocket", "--ws-port", "CIRNO_GATEWAY_WS_PORT"),
        PortUse(args.tcp_port, "gateway TCP", "--tcp-port", "CIRNO_GATEWAY_TCP_PORT"),
    ]
    for w in workers(args):
        suffix = "" if w.index == 0 else f" of worker {w.index + 1}"
        uses += [
            PortUse(
                w.logic_port,
                f"logic node (gateway links){suffix}",
                "--logic-port",
                "CIRNO_LOGIC_PORT",
            ),
            PortUse(
                w.gateway_metrics_port,
                f"gateway metrics{suffix}",
                "--gateway-metrics-port",
                "CIRNO_GATEWAY_METRICS_PORT",
            ),
            PortUse(
                w.logic_metrics_port,
                f"logic node metrics{suffix}",
                "--logic-metrics-port",
                "CIRNO_LOGIC_METRICS_PORT",
            ),
        ]
    return uses


def workers_problem(args: argparse.Namespace) -> str | None:
    """Why ``--workers`` cannot run as given, or None.

    Each logic worker is its own node, and a session store in memory lives inside one
    process: a client logged in through one node would be unknown to the others. So more
    than one worker needs a shared session store (Redis).
    """
    count = getattr(args, "workers", 1)
    if count < 1:
        return f"--workers must be at least 1, not {count}"
    session_url = os.environ.get("CIRNO_SESSION_URL") or "memory://"
    if count > 1 and session_url.startswith("memory:"):
        return (
            f"--workers {count} needs a session store the logic workers share: set "
            "CIRNO_SESSION_URL=redis://HOST:PORT/DB (the in-memory store lives in one process)"
        )
    return None


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
            # Every gateway links to every logic worker and routes by account.
            "CIRNO_LOGIC_ADDRS": ",".join(
                f"{_dial_host(host)}:{w.logic_port}" for w in workers(args)
            ),
            "CIRNO_GATEWAY_METRICS_PORT": str(args.gateway_metrics_port),
            "CIRNO_LOGIC_METRICS_PORT": str(args.logic_metrics_port),
            # The console's charts scrape every process.
            "CIRNO_METRICS_TARGETS": ",".join(
                f"http://{_dial_host(host)}:{port}/metrics"
                for w in workers(args)
                for port in (w.gateway_metrics_port, w.logic_metrics_port)
            ),
            "CIRNO_LOG_FORMAT": args.log_format,
        }
    )
    if getattr(args, "workers", 1) > 1:
        env["CIRNO_GATEWAY_REUSE_PORT"] = "1"
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

    def start(self, role: str, name: str | None = None, **env: str) -> None:
        """Start ``cirno <role>`` (as ``name``, with ``env`` added) in its own session
        (Ctrl-C reaches only ``cirno up``, which then stops the children in order)."""
        self.children[name or role] = subprocess.Popen(
            [sys.executable, "-m", "cirno.cli", role],
            env={**self._env, **env},
            start_new_session=True,
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
    problem = workers_problem(args)
    if problem is not None:
        print(f"cirno up: {problem}; nothing was started", file=sys.stderr, flush=True)
        return 2
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
    several = len(workers(args, env)) > 1
    for w in workers(args, env):
        supervisor.start(
            "logic",
            f"logic-{w.index + 1}" if several else "logic",
            CIRNO_LOGIC_ID=w.logic_id,
            CIRNO_LOGIC_PORT=str(w.logic_port),
            CIRNO_LOGIC_METRICS_PORT=str(w.logic_metrics_port),
        )
        # Ready means it listens and is registered: gateways can find it and link.
        # (A bare TCP probe of its link port would log a gateway link that closed.)
        logic_ready = f"http://{host}:{w.logic_metrics_port}/readyz"
        supervisor.await_ready(
            f"the logic node {w.logic_id} was not ready (listening and registered)",
            functools.partial(answers_http, logic_ready),
            deadline,
        )
    for w in workers(args, env):
        supervisor.start(
            "gateway",
            f"gateway-{w.index + 1}" if several else "gateway",
            CIRNO_GATEWAY_ID=w.gateway_id,
            CIRNO_GATEWAY_METRICS_PORT=str(w.gateway_metrics_port),
        )
        gateway_ready = f"http://{host}:{w.gateway_metrics_port}/readyz"
        supervisor.await_ready(
            f"the gateway {w.gateway_id} was not ready (linked to the logic nodes and registered)",
            functools.partial(_gateway_ready, gateway_ready, host, args),
            deadline,
        )


def _gateway_ready(readyz: str, host: str, args: argparse.Namespace) -> bool:
    """Linked and registered (``readyz``), and both client ports accept."""
    return answers_http(readyz) and accepts(host, args.ws_port) and accepts(host, args.tcp_port)
