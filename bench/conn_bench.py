"""Connection benchmark: gateway memory per idle logged-in WebSocket connection.

Theory of operation
-------------------
The gateway (or the relay's front) is sampled for its resident set (``VmRSS``), then
``connections`` clients connect and log in and stay idle, then the gateway is sampled
again: the difference over the count is the memory one logged-in connection costs.
Then every client closes and, after ``settle`` seconds, a last sample says how much of
that memory the process handed back to the system.

A process may hold at most its open-file limit of sockets (about 20,000 here, and it
cannot be raised), the gateway and the load generator alike, and one source address
has about 28,000 ephemeral ports towards one server port. So the clients are spread
over ``workers`` processes (``python -m bench.conn_bench worker``), each with its own
descriptor limit and its own loopback source address (127.0.0.2, 127.0.0.3, ...). A
worker logs its share in, prints ``opened <ok> <failed>``, waits for a line on stdin,
closes them all and prints ``closed``. Logins that fail are counted, not fatal: near the
limit the last few may not fit, and the figure is taken over those that did.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio

from bench.client import close_all, open_client
from bench.targets import REPO_ROOT, Target, cirno_token
from data_plane.transport.ws import WsConnection


@dataclass(frozen=True)
class ConnConfig:
    """How many connections, from how many client processes, how fast."""

    connections: int = 19_000
    workers: int = 4
    login_concurrency: int = 100
    """Logins in flight per worker."""
    settle: float = 12.0
    """Seconds between the last close and the final memory sample (the gateway looks
    for free heap to hand back every 5 s, ``cirno.tuning``)."""
    timeout: float = 300.0


@dataclass
class ConnResult:
    """What one run measured (memory in KiB of the gateway process, summed over the
    gateways where there are several)."""

    target: str
    process: str
    config: ConnConfig
    opened: int
    failed: int
    open_seconds: float
    rss_before_kib: int
    rss_open_kib: int
    rss_closed_kib: int
    fd_limit: int

    @property
    def per_connection_bytes(self) -> float:
        """Resident bytes per open logged-in connection."""
        if self.opened <= 0:
            return math.nan
        return (self.rss_open_kib - self.rss_before_kib) * 1024 / self.opened

    @property
    def handed_back_fraction(self) -> float:
        """Share of the memory the connections took that closing them gave back."""
        grown = self.rss_open_kib - self.rss_before_kib
        if grown <= 0:
            return math.nan
        return (self.rss_open_kib - self.rss_closed_kib) / grown

    def projected_mib(self, connections: int = 100_000) -> float:
        """Resident MiB of one gateway holding ``connections`` at the measured rate."""
        return (self.rss_before_kib * 1024 + self.per_connection_bytes * connections) / 2**20

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, derived figures included."""
        out = asdict(self)
        out["per_connection_bytes"] = round(self.per_connection_bytes, 1)
        out["handed_back_fraction"] = round(self.handed_back_fraction, 3)
        out["projected_100k_mib"] = round(self.projected_mib(), 1)
        out["logins_per_s"] = round(self.opened / self.open_seconds, 1) if self.opened else 0
        return out


def rss_kib(pid: int) -> int:
    """Resident set of ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for {pid}")


def fd_limit(pid: int) -> int:
    """The soft open-file limit of ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise LookupError(f"no open-file limit for {pid}")


def front_processes(target: Target) -> dict[str, int]:
    """The processes clients connect to: the gateway(s), or the relay's front."""
    found = {
        name: pid
        for name, pid in sorted(target.processes.items())
        if name in ("gateway", "relay-front") or name.startswith("gateway-")
    }
    if not found:
        raise LookupError(f"{target.name} has no gateway process")
    return found


def _rss_sum(pids: list[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


def _spawn(target: Target, prefix: str, count: int, index: int, config: ConnConfig) -> Any:
    command = [
        sys.executable,
        "-m",
        "bench.conn_bench",
        "worker",
        "--url",
        target.ws_url,
        "--prefix",
        f"{prefix}w{index}",
        "--count",
        str(count),
        "--local",
        f"127.0.0.{2 + index}",
        "--concurrency",
        str(config.login_concurrency),
    ]
    if not target.durable:
        command.append("--relay")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _expect(process: Any, word: str) -> list[str]:
    line = process.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError(f"connection worker said {line!r} instead of {word!r}")
    return list(line[1:])


def run_connections(target: Target, config: ConnConfig) -> ConnResult:
    """Open, sample, close, sample (see the module docstring)."""
    fronts = front_processes(target)
    name, pids = "+".join(fronts), list(fronts.values())
    prefix = uuid.uuid4().hex[:6]
    shares = [config.connections // config.workers] * config.workers
    shares[0] += config.connections - sum(shares)
    before = _rss_sum(pids)
    started = time.perf_counter()
    workers = [_spawn(target, prefix, n, i, config) for i, n in enumerate(shares) if n > 0]
    try:
        opened = failed = 0
        for worker in workers:
            ok, bad = _expect(worker, "opened")
            opened, failed = opened + int(ok), failed + int(bad)
        open_seconds = time.perf_counter() - started
        time.sleep(1.0)  # let the last logins' work settle before sampling
        at_peak = _rss_sum(pids)
        for worker in workers:
            worker.stdin.write("close\n")
            worker.stdin.flush()
        for worker in workers:
            _expect(worker, "closed")
        time.sleep(config.settle)
        after = _rss_sum(pids)
    finally:
        for worker in workers:
            worker.stdin.close()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker.stdout.close()
    return ConnResult(
        target=target.name,
        process=name,
        config=config,
        opened=opened,
        failed=failed,
        open_seconds=round(open_seconds, 2),
        rss_before_kib=before,
        rss_open_kib=at_peak,
        rss_closed_kib=after,
        fd_limit=fd_limit(pids[0]),
    )


async def _worker(args: argparse.Namespace) -> None:
    """Log ``count`` clients in, report, wait for stdin, close them, report."""
    token_for = (lambda account: account) if args.relay else cirno_token
    clients: list[WsConnection] = []
    failed = 0
    limiter = anyio.CapacityLimiter(args.concurrency)

    async def one(index: int) -> None:
        nonlocal failed
        async with limiter:
            try:
                token = token_for(f"{args.prefix}c{index}")
                clients.append(await open_client(args.url, token, local_host=args.local))
            except Exception:
                failed += 1

    async with anyio.create_task_group() as tg:
        for index in range(args.count):
            tg.start_soon(one, index)
    print(f"opened {len(clients)} {failed}", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    await close_all(clients, timeout=30.0)
    print("closed", flush=True)


def format_table(results: list[ConnResult]) -> str:
    """One line per run."""
    head = (
        f"{'target':<8} {'opened':>7} {'failed':>6} {'logins/s':>9} {'before MiB':>10} "
        f"{'open MiB':>9} {'B/conn':>7} {'closed MiB':>10} {'handed back':>11} {'100k MiB':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        d = r.as_dict()
        lines.append(
            f"{r.target:<8} {r.opened:>7} {r.failed:>6} {d['logins_per_s']:>9.0f} "
            f"{r.rss_before_kib / 1024:>10.1f} {r.rss_open_kib / 1024:>9.1f} "
            f"{r.per_connection_bytes:>7.0f} {r.rss_closed_kib / 1024:>10.1f} "
            f"{r.handed_back_fraction:>11.0%} {r.projected_mib():>9.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.conn_bench worker ...``: one client process of a run."""
    parser = argparse.ArgumentParser(prog="python -m bench.conn_bench")
    parser.add_argument("mode", choices=("worker",))
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--local", default=None, help="source address, e.g. 127.0.0.2")
    parser.add_argument("--concurrency", type=int, default=ConnConfig.login_concurrency)
    parser.add_argument("--relay", action="store_true")
    args = parser.parse_args(argv)
    anyio.run(_worker, args, backend="asyncio", backend_options={"use_uvloop": True})


if __name__ == "__main__":
    main()
