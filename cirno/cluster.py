"""``cirno cluster``: a scale-out topology on one machine, for trying and testing.

Theory of operation
-------------------
``cirno up`` runs one of each role on embedded storage; ``cirno cluster`` runs the
production shape locally:

1. a **Redis Cluster** of three masters from the installed ``redis-server`` (no
   replicas), each on its own port with its own directory under
   ``{data_dir}/redis/{port}``. A directory that already holds a ``nodes.conf`` from an
   earlier run rejoins its cluster; fresh nodes are joined with ``redis-cli --cluster
   create``;
2. the **MySQL** database of ``CIRNO_MYSQL_URL`` (default
   ``mysql://root@127.0.0.1:3306/cirno``), created when missing and migrated to head;
3. a **control plane**, **3 logic nodes** (``logic-1..3``, ``CIRNO_ID_NODE`` 1..3) and
   **2 gateways** (``gw-1..2``), each a ``cirno <role>`` process with sessions on the
   Redis Cluster and messages in MySQL.

It prints every address once everything answers, and on Ctrl-C or SIGTERM stops the
gateways first (their clients are closed with 1001 and reconnect elsewhere), then the
logic nodes and the control plane, then Redis.

Every process is supervised (:mod:`cirno.supervisor`): one that fails -- ``kill -9``,
a crash -- is restarted with exponential back-off (0.5 s doubling up to 30 s, logged
with a restart counter), a Redis node on its own port and directory so that its
``nodes.conf`` makes it rejoin the cluster. One that exits with status 0 (a gateway
drained with SIGTERM) stays stopped, as under systemd's ``Restart=on-failure``. The
exit status is 1 if anything was restarted or failed to stop. The names and current
pids are kept in ``{data_dir}/processes.json`` (rewritten after every restart) so that
tools such as ``cirno verify --faults`` can find them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from cirno.supervisor import Start, Supervisor

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/cirno"
STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT = 40.0


@dataclass(frozen=True, slots=True)
class Ports:
    """Every listening port of the recipe."""

    redis: tuple[int, ...]
    control: int
    logic: tuple[int, ...]
    ws: tuple[int, ...]
    tcp: tuple[int, ...]


class RecipeError(Exception):
    """The recipe cannot start (a missing program, a busy port, MySQL unreachable)."""


def _ports_arg(raw: str, count: int, default_base: int, step: int = 1) -> tuple[int, ...]:
    if not raw:
        return tuple(default_base + i * step for i in range(count))
    ports = tuple(int(p) for p in raw.split(",") if p.strip())
    if len(ports) != count:
        raise RecipeError(f"expected {count} ports, got {raw!r}")
    return ports


def ports_from(args: argparse.Namespace) -> Ports:
    """The ports asked for: explicit lists, or the defaults (Redis 7001-7003, control
    8080, logic 8100-8102, gateway WebSocket 8000/8002 and TCP 8001/8003)."""
    return Ports(
        redis=_ports_arg(args.redis_ports, 3, 7001),
        control=args.control_port,
        logic=_ports_arg(args.logic_ports, args.logic_nodes, 8100),
        ws=_ports_arg(args.ws_ports, args.gateways, 8000, step=2),
        tcp=_ports_arg(args.tcp_ports, args.gateways, 8001, step=2),
    )


# -- Redis Cluster ---------------------------------------------------------------------------


def _redis_cli(host: str, port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout


def _cluster_info(host: str, port: int) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in _redis_cli(host, port, "cluster", "info").splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            info[key] = value
    return info


def _wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            if check():
                return
        time.sleep(0.1)
    raise RecipeError(f"{what} within {timeout:g} s")


def redis_node(host: str, port: int, node_dir: Path) -> Start:
    """A function starting the Redis Cluster master on ``port`` with its data and
    ``nodes.conf`` in ``node_dir``: started again, the node rejoins its cluster."""

    def start() -> subprocess.Popen[bytes]:
        node_dir.mkdir(parents=True, exist_ok=True)
        with (node_dir / "redis.log").open("ab") as log_file:
            return subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", host,
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "5000", "--appendonly", "yes",
                 # One unreachable master must not stop the others serving their slots.
                 "--cluster-require-full-coverage", "no",
                 "--dir", str(node_dir)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    return start


def start_redis_cluster(
    host: str, ports: tuple[int, ...], directory: Path, sup: Supervisor
) -> None:
    """Start (or restart) the masters under ``sup`` and make sure they form one cluster."""
    for program in ("redis-server", "redis-cli"):
        if shutil.which(program) is None:
            raise RecipeError(f"{program} is not installed (Debian: apt-get install redis-server)")
    processes = [
        sup.add(f"redis-{port}", redis_node(host, port, directory / str(port))) for port in ports
    ]
    try:
        for port, process in zip(ports, processes, strict=True):

            def answers(p: int = port, proc: subprocess.Popen[bytes] = process) -> bool:
                if proc.poll() is not None:
                    raise RecipeError(f"redis-server on port {p} exited (busy port?)")
                return _redis_cli(host, p, "ping").strip() == "PONG"

            _wait(answers, f"redis-server on port {port} did not answer")
        known = [int(_cluster_info(host, p).get("cluster_known_nodes", "1")) for p in ports]
        if all(k == 1 for k in known):
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"{host}:{p}" for p in ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )  # fmt: skip
        for port in ports:

            def ready(p: int = port) -> bool:
                return _cluster_info(host, p).get("cluster_state") == "ok"

            _wait(
                ready,
                f"the Redis Cluster did not become ready (node {port}; if the data directory "
                f"holds an old cluster, remove {directory})",
            )
    except BaseException:
        sup.stop()
        raise


# -- MySQL -----------------------------------------------------------------------------------


def prepare_mysql(url: str) -> None:
    """Create the database of ``url`` when missing, then migrate it to head."""
    import pymysql

    from control_plane.migrate import upgrade

    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    if parts.scheme.split("+", 1)[0] not in ("mysql", "mariadb") or not database:
        raise RecipeError(f"CIRNO_MYSQL_URL must be mysql://user[:password]@host:port/db: {url}")
    try:
        conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            autocommit=True,
        )
    except pymysql.MySQLError as exc:
        raise RecipeError(f"cannot reach MySQL at {parts.hostname}:{parts.port}: {exc}") from exc
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
    finally:
        conn.close()
    upgrade(urlunsplit(("mysql", parts.netloc, parts.path, parts.query, "")))


# -- the roles -------------------------------------------------------------------------------


def role_environment(
    args: argparse.Namespace, ports: Ports, mysql_url: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment every role process shares (on top of ``base``, by default ours)."""
    host = args.host
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "CIRNO_DATA_DIR": str(Path(args.data_dir).resolve()),
            "CIRNO_DATABASE_URL": mysql_url,
            "CIRNO_MESSAGE_DATABASE_URL": mysql_url,
            "CIRNO_SESSION_URL": f"redis+cluster://{host}:{ports.redis[0]}",
            "CIRNO_CONTROL_HOST": host,
            "CIRNO_CONTROL_PORT": str(ports.control),
            "CIRNO_CONTROL_URL": f"http://{host}:{ports.control}",
            "CIRNO_LOGIC_ADDRS": ",".join(f"{host}:{p}" for p in ports.logic),
            "CIRNO_LOGIC_HOST": host,
            "CIRNO_GATEWAY_WS_HOST": host,
            "CIRNO_GATEWAY_TCP_HOST": host,
        }
    )
    env.setdefault("CIRNO_SESSION_PREFIX", "cirno")
    for shared_port in ("CIRNO_GATEWAY_METRICS_PORT", "CIRNO_LOGIC_METRICS_PORT"):
        env.pop(shared_port, None)  # one port for several processes of a role would clash
    if not env.get("CIRNO_CLUSTER_SECRET"):
        env["CIRNO_CLUSTER_SECRET"] = secrets.token_urlsafe(32)
    if not env.get("CIRNO_ADMIN_TOKEN"):
        env["CIRNO_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
        print(f"CIRNO_ADMIN_TOKEN (generated): {env['CIRNO_ADMIN_TOKEN']}", flush=True)
    return env


def role(name: str, env: dict[str, str], extra: dict[str, str], log: Path | None = None) -> Start:
    """A function starting ``cirno <name>`` with ``env`` plus ``extra``; its output goes
    to ours, or is appended to ``log``."""

    def start() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "cirno.cli", name]
        if log is None:
            return subprocess.Popen(command, env={**env, **extra}, start_new_session=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                command,
                env={**env, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    return start


def start_roles(
    env: dict[str, str], ports: Ports, sup: Supervisor, log_dir: Path | None = None
) -> list[str]:
    """Start the control plane, then the logic nodes, then the gateways under ``sup``,
    each stage once the previous one answers, and order the children for stopping
    (gateways first). Each role's output goes to ``log_dir/<name>.log`` when given.
    Returns a line per address."""

    def log(name: str) -> Path | None:
        return None if log_dir is None else log_dir / f"{name}.log"

    host = env["CIRNO_CONTROL_HOST"]
    deadline = time.monotonic() + READY_TIMEOUT
    health = f"{env['CIRNO_CONTROL_URL']}/healthz"
    sup.add("control", role("control", env, {}, log("control")))
    _await(sup, lambda: _healthy(health), "the control plane", deadline)
    lines = [f"control plane   {env['CIRNO_CONTROL_URL']}  (/docs, /healthz, /metrics)"]
    for index, port in enumerate(ports.logic, start=1):
        extra = {
            "CIRNO_LOGIC_ID": f"logic-{index}",
            "CIRNO_LOGIC_PORT": str(port),
            "CIRNO_ID_NODE": str(index),
        }
        sup.add(f"logic-{index}", role("logic", env, extra, log(f"logic-{index}")))
        lines.append(f"logic-{index}         {host}:{port}  (gateways only, CIRNO_ID_NODE={index})")
    _await(sup, lambda: _all_open(host, ports.logic), "the logic nodes", deadline)
    for index, (ws, tcp) in enumerate(zip(ports.ws, ports.tcp, strict=True), start=1):
        extra = {
            "CIRNO_GATEWAY_ID": f"gw-{index}",
            "CIRNO_GATEWAY_WS_PORT": str(ws),
            "CIRNO_GATEWAY_TCP_PORT": str(tcp),
        }
        sup.add(f"gw-{index}", role("gateway", env, extra, log(f"gw-{index}")))
        lines.append(f"gw-{index}            ws://{host}:{ws}/  tcp://{host}:{tcp}")
    _await(sup, lambda: _all_open(host, [*ports.ws, *ports.tcp]), "the gateways", deadline)
    sup.order(stop_rank)
    return lines


def stop_rank(name: str) -> tuple[int, str]:
    """Stopping order: gateways, logic nodes, the control plane, then Redis."""
    return ({"gw": 0, "logic": 1, "control": 2}.get(name.split("-")[0], 3), name)


def write_process_table(path: Path, sup: Supervisor) -> None:
    """``{name: {"pid": …, "restarts": …}}`` of every child, replaced atomically."""
    table = {
        name: {"pid": child.process.pid, "restarts": child.restarts}
        for name, child in sup.children.items()
    }
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(table, indent=1))
    scratch.replace(path)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _all_open(host: str, ports: Sequence[int]) -> bool:
    for port in ports:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                pass
        except OSError:
            return False
    return True


def _await(sup: Supervisor, ready: Callable[[], bool], what: str, deadline: float) -> None:
    """Until ``ready()``; RecipeError when a child exits or the deadline passes."""
    while not ready():
        for name, child in sup.children.items():
            if child.process.poll() is not None:
                raise RecipeError(f"{name} exited with status {child.process.returncode}")
        if time.monotonic() > deadline:
            raise RecipeError(f"{what} did not answer within {READY_TIMEOUT:g} s")
        time.sleep(0.1)


# -- the command -----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cirno cluster``."""
    parser.add_argument("--data-dir", default="data/cluster", help="Redis data and nodes.conf")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--control-port", type=int, default=8080)
    parser.add_argument("--logic-nodes", type=int, default=3)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--redis-ports", default="", help="3 ports (default 7001,7002,7003)")
    parser.add_argument("--logic-ports", default="", help="one per logic node (8100,8101,…)")
    parser.add_argument("--ws-ports", default="", help="one per gateway (8000,8002,…)")
    parser.add_argument("--tcp-ports", default="", help="one per gateway (8001,8003,…)")


def main(args: argparse.Namespace) -> int:
    """Run the recipe until Ctrl-C / SIGTERM; returns the exit status."""
    stopping = False

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mysql_url = os.environ.get("CIRNO_MYSQL_URL") or DEFAULT_MYSQL_URL
    data_dir = Path(args.data_dir).resolve()
    sup = Supervisor()
    try:
        ports = ports_from(args)
        prepare_mysql(mysql_url)
        start_redis_cluster(args.host, ports.redis, data_dir / "redis", sup)
        env = role_environment(args, ports, mysql_url)
        lines = start_roles(env, ports, sup)
    except (RecipeError, subprocess.SubprocessError, OSError, ValueError) as exc:
        print(f"cirno cluster: {exc}; stopping", file=sys.stderr, flush=True)
        sup.stop(STOP_GRACE_SECONDS)
        return 1
    redis_line = ", ".join(f"{args.host}:{p}" for p in ports.redis)
    print(
        "\n".join(
            [
                f"redis cluster   {redis_line}  (CIRNO_SESSION_URL={env['CIRNO_SESSION_URL']})",
                f"mysql           {_hide_password(mysql_url)}",
                *lines,
                "cirno cluster is up. Ctrl-C stops it.",
            ]
        ),
        flush=True,
    )
    table = data_dir / "processes.json"
    pids = {name: child.process.pid for name, child in sup.children.items()}
    write_process_table(table, sup)
    while not stopping:
        sup.check()
        current = {name: child.process.pid for name, child in sup.children.items()}
        if current != pids:
            pids = current
            write_process_table(table, sup)
        if all(sup.children[name].finished for name in sup.children if stop_rank(name)[0] < 3):
            print("cirno cluster: every role exited; stopping", flush=True)
            break
        time.sleep(0.2)
    status = sup.stop(STOP_GRACE_SECONDS)
    table.unlink(missing_ok=True)
    print("cirno cluster stopped", flush=True)
    return status


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}:{parts.port or 3306}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
