"""The ``cirno`` command: run one role, or the all-in-one (``cirno up``).

``cirno up`` starts the control plane, one logic node and one gateway as separate
processes on the embedded default (SQLite files under the data directory, in-memory
sessions), waits until they answer, and stops every child cleanly on Ctrl-C or
SIGTERM. Each role can also run alone (``cirno control|logic|gateway``), configured by
``CIRNO_*`` environment variables (see docs/operations.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path

import httpx

from cirno.runtime import run_until_signalled, setup_logging

ROLES = ("control", "logic", "gateway")
STOP_GRACE_SECONDS = 10.0


def _run_control() -> None:
    from control_plane.server import run
    from control_plane.settings import ControlPlaneSettings

    setup_logging("control")
    run(ControlPlaneSettings.from_env())


def _run_logic() -> None:
    from control_plane.migrate import upgrade
    from data_plane.logic.main import serve
    from data_plane.logic.settings import LogicSettings

    setup_logging("logic")
    settings = LogicSettings.from_env()
    if settings.database_url.startswith("sqlite:"):
        upgrade(settings.database_url)
    run_until_signalled(lambda: serve(settings))


def _run_gateway() -> None:
    from data_plane.gateway.main import serve
    from data_plane.gateway.settings import GatewaySettings

    setup_logging("gateway")
    settings = GatewaySettings.from_env()
    run_until_signalled(lambda: serve(settings))


def _up_environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    host = args.host
    env.update(
        {
            "CIRNO_DATA_DIR": str(data_dir),
            "CIRNO_CONTROL_HOST": host,
            "CIRNO_CONTROL_PORT": str(args.control_port),
            "CIRNO_CONTROL_URL": f"http://{host}:{args.control_port}",
            "CIRNO_GATEWAY_WS_HOST": host,
            "CIRNO_GATEWAY_WS_PORT": str(args.ws_port),
            "CIRNO_GATEWAY_TCP_HOST": host,
            "CIRNO_GATEWAY_TCP_PORT": str(args.tcp_port),
            "CIRNO_LOGIC_HOST": host,
            "CIRNO_LOGIC_PORT": str(args.logic_port),
            "CIRNO_LOGIC_ADDRS": f"{host}:{args.logic_port}",
            "CIRNO_GATEWAY_METRICS_PORT": str(args.gateway_metrics_port),
            "CIRNO_LOGIC_METRICS_PORT": str(args.logic_metrics_port),
            # The console's charts scrape both processes.
            "CIRNO_METRICS_TARGETS": f"http://{host}:{args.gateway_metrics_port}/metrics,"
            f"http://{host}:{args.logic_metrics_port}/metrics",
        }
    )
    env.setdefault("CIRNO_DATABASE_URL", f"sqlite:///{data_dir}/control.db")
    env.setdefault("CIRNO_MESSAGE_DATABASE_URL", f"sqlite:///{data_dir}/messages.db")
    env.setdefault("CIRNO_SESSION_URL", "memory://")
    env.setdefault("CIRNO_GATEWAY_ID", "gw-1")
    env.setdefault("CIRNO_LOGIC_ID", "logic-1")
    if not env.get("CIRNO_CLUSTER_SECRET"):
        env["CIRNO_CLUSTER_SECRET"] = secrets.token_urlsafe(32)
    if not env.get("CIRNO_ADMIN_TOKEN"):
        env["CIRNO_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        print(f"CIRNO_ADMIN_TOKEN (generated): {env['CIRNO_ADMIN_TOKEN']}", flush=True)
    return env


def _wait_ready(url: str, children: dict[str, subprocess.Popen[bytes]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children.values()):
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> int:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    worst = 0
    for role, child in children.items():
        try:
            code = child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{role} did not stop within {STOP_GRACE_SECONDS:.0f} s: killed", flush=True)
            child.kill()
            code = child.wait()
        if code not in (0, -signal.SIGTERM):
            worst = worst or 1
    return worst


def up(args: argparse.Namespace) -> int:
    """Run the all-in-one until interrupted; returns the exit status."""
    env = _up_environment(args)
    from control_plane.migrate import upgrade

    upgrade(env["CIRNO_DATABASE_URL"])
    upgrade(env["CIRNO_MESSAGE_DATABASE_URL"])
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for role in ("logic", "control", "gateway"):
        children[role] = subprocess.Popen(
            [sys.executable, "-m", "cirno.cli", role], env=env, start_new_session=True
        )
    health = f"{env['CIRNO_CONTROL_URL']}/healthz"
    if not _wait_ready(health, children, timeout=30.0):
        print("cirno-im failed to start; stopping", flush=True)
        _stop(children)
        return 1
    print(
        f"cirno-im is up: control plane {env['CIRNO_CONTROL_URL']}, "
        f"gateway ws://{args.host}:{args.ws_port}/ and tcp {args.host}:{args.tcp_port}, "
        f"data in {env['CIRNO_DATA_DIR']}. Ctrl-C stops it.",
        flush=True,
    )
    while not stopping:
        for role, child in children.items():
            if child.poll() is not None:
                print(f"{role} exited with status {child.returncode}; stopping", flush=True)
                _stop(children)
                return 1
        time.sleep(0.2)
    return _stop(children)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cirno``."""
    parser = argparse.ArgumentParser(prog="cirno", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_up = sub.add_parser("up", help="run the all-in-one on the embedded default")
    run_up.add_argument("--data-dir", default=os.environ.get("CIRNO_DATA_DIR", "data"))
    run_up.add_argument("--host", default=os.environ.get("CIRNO_HOST", "127.0.0.1"))
    run_up.add_argument("--control-port", type=int, default=_env_port("CIRNO_CONTROL_PORT", 8080))
    run_up.add_argument("--ws-port", type=int, default=_env_port("CIRNO_GATEWAY_WS_PORT", 8000))
    run_up.add_argument("--tcp-port", type=int, default=_env_port("CIRNO_GATEWAY_TCP_PORT", 8001))
    run_up.add_argument("--logic-port", type=int, default=_env_port("CIRNO_LOGIC_PORT", 8100))
    run_up.add_argument(
        "--gateway-metrics-port", type=int, default=_env_port("CIRNO_GATEWAY_METRICS_PORT", 9100)
    )
    run_up.add_argument(
        "--logic-metrics-port", type=int, default=_env_port("CIRNO_LOGIC_METRICS_PORT", 9101)
    )
    for role in ROLES:
        sub.add_parser(role, help=f"run one {role} process, configured by CIRNO_* variables")
    chat = sub.add_parser("chat", help="chat in the terminal: @account text, #group text, /quit")
    chat.add_argument("--url", default="ws://127.0.0.1:8000/", help="ws://… or tcp://host:port")
    chat.add_argument("--token", help="a user token (JWT)")
    chat.add_argument("--tenant", help="with --account and --secret: mint a token locally (dev)")
    chat.add_argument("--account")
    chat.add_argument("--secret")
    chat.add_argument("--device", default="terminal")
    from cirno import cluster, verify

    verify.add_arguments(
        sub.add_parser("verify", help="integrity check: traffic through the SDK, then count")
    )
    cluster.add_arguments(
        sub.add_parser("cluster", help="Redis Cluster + MySQL, 3 logic nodes, 2 gateways")
    )
    return parser


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cirno`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "up":
        return up(args)
    if args.command == "chat":
        from cirno.chat import main as chat_main

        return chat_main(args)
    if args.command == "verify":
        from cirno.verify import main as verify_main

        return verify_main(args)
    if args.command == "cluster":
        from cirno.cluster import main as cluster_main

        return cluster_main(args)
    {"control": _run_control, "logic": _run_logic, "gateway": _run_gateway}[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
