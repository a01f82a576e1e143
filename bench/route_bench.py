"""Smart-routing benchmark: ``GET /v1/route`` against ``GET /v1/ping`` on the same server.

Theory of operation
-------------------
The control plane runs as a real process (``python -m control_plane``: uvicorn, one
worker, uvloop) on a free loopback port and a temporary SQLite database, with a GeoIP
database written for the run (one network per region's country). The set-up registers
20 regions and 1,000 gateways (50 per region, two zones each, random loads, a few in a
``canary`` pool) through heartbeats, one tenant, a grayscale rule sending 10 % of its
accounts to the canary pool, and user tokens for a few hundred accounts.

Then an asyncio load generator (``concurrency`` requests in flight on keep-alive
connections, closed loop) measures two phases of the same length, each after a warm-up:

- ``ping``: the trivial endpoint, the baseline of what the stack (uvicorn, FastAPI,
  middleware, loopback HTTP, the generator itself) costs per request;
- ``route``: a full route answer for a rotating account token and client address
  (``?ip=`` with the admin header, so GeoIP and regions are exercised).

Both phases run twice: with httpx as the client, and with a minimal asyncio HTTP/1.1
client (:class:`RawConnection`) that costs the generator far less CPU per request, so
that the server, not the generator, is what saturates. Each phase stops after
``duration`` seconds or ``max_requests`` requests, whichever comes first. On Linux with
two or more cores the server is pinned to CPU 0 and the generator to CPU 1. Loopback
only; nothing else is contacted.

Besides rates and latencies, each phase reports the server's CPU microseconds per
answered request and the CPU other processes used meanwhile (``others``, from
``/proc/stat``): on a shared machine the request rate follows whatever else runs on the
server's core, the CPU cost of an answer much less, so compare runs by the latter and
read the former together with ``others``.

Run: ``python -m bench.route_bench [--duration S] [--concurrency N]``. Prints a table
and writes ``bench/results/route.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "bench" / "results" / "route.json"
ADMIN_TOKEN = "route-bench-admin"
CLUSTER_SECRET = "route-bench-cluster"
COUNTRIES = (
    ("DE", "EU"),
    ("FR", "EU"),
    ("GB", "EU"),
    ("IT", "EU"),
    ("ES", "EU"),
    ("NL", "EU"),
    ("SE", "EU"),
    ("PL", "EU"),
    ("US", "NA"),
    ("CA", "NA"),
    ("MX", "NA"),
    ("BR", "SA"),
    ("AR", "SA"),
    ("JP", "AS"),
    ("KR", "AS"),
    ("IN", "AS"),
    ("SG", "AS"),
    ("AU", "OC"),
    ("NZ", "OC"),
    ("ZA", "AF"),
)
GATEWAYS_PER_REGION = 50


@dataclass(frozen=True, slots=True)
class Phase:
    """One measured phase."""

    name: str
    client: str
    """The load generator: ``httpx`` or ``raw`` (a minimal asyncio HTTP/1.1 client)."""
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu: float
    """Server CPU seconds per wall second during the phase (1.0 = one core busy)."""
    loadgen_cpu: float
    """The load generator's CPU seconds per wall second."""
    server_us_per_request: float
    """Server CPU microseconds per answered request: the cost of one answer, which other
    processes on the machine disturb far less than the request rate."""
    others_cpu: float
    """CPU seconds per wall second used by everything else on the machine (other work
    competing for the cores; NaN where ``/proc/stat`` is missing)."""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def region_network(index: int) -> str:
    """The (made-up) IPv4 network of region ``index`` in the run's GeoIP database."""
    return f"{30 + index}.{index}.0.0/16"


def region_ip(index: int, rng: random.Random) -> str:
    """A random address of region ``index``."""
    return f"{30 + index}.{index}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def write_geoip(path: Path) -> None:
    """One network per region's country (needs the dev dependency ``mmdb-writer``)."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet  # type: ignore[import-untyped]

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    for index, (country, continent) in enumerate(COUNTRIES):
        writer.insert_network(
            IPSet([region_network(index)]),
            {"country": {"iso_code": country}, "continent": {"code": continent}},
        )
    writer.to_db_file(str(path))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (Linux), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (Linux ``/proc/stat``), or NaN."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return math.nan
    jiffies = [int(field) for field in fields]
    idle = jiffies[3] + (jiffies[4] if len(jiffies) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    busy = sum(jiffies[:8]) - idle
    return busy / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpu: int) -> bool:
    """Pin ``pid`` (0: this process) to ``cpu`` when the machine has a second core."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def start_server(workdir: Path, port: int, geoip: Path) -> subprocess.Popen[bytes]:
    """The control plane as a real process (it migrates its database first)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "CIRNO_DATABASE_URL": f"sqlite:///{workdir}/control.db",
        "CIRNO_ADMIN_TOKEN": ADMIN_TOKEN,
        "CIRNO_CLUSTER_SECRET": CLUSTER_SECRET,
        "CIRNO_CONTROL_HOST": "127.0.0.1",
        "CIRNO_CONTROL_PORT": str(port),
        "CIRNO_GEOIP_DB": str(geoip),
        "CIRNO_NODE_TTL": "3600",  # the gateways beat once; they must outlive the run
    }
    return subprocess.Popen([sys.executable, "-m", "control_plane"], cwd=workdir, env=env)


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    """Wait until the server answers ``/healthz``."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError("the control plane exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start within 60 s")
        await asyncio.sleep(0.1)


async def set_up(client: httpx.AsyncClient, accounts: int, rng: random.Random) -> list[str]:
    """Regions, gateways, tenant, grayscale rule; returns user tokens."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    cluster = {"X-Cirno-Cluster-Secret": CLUSTER_SECRET}
    for index, (country, _continent) in enumerate(COUNTRIES):
        region = f"r{index:02d}"
        body = {
            "id": region,
            "name": region,
            "countries": [country],
            "zones": [{"zone": f"{region}-a", "weight": 2}, {"zone": f"{region}-b", "weight": 1}],
            "is_default": index == 0,
        }
        (await client.post("/v1/regions", json=body, headers=admin)).raise_for_status()

    async def beat(index: int) -> None:
        region = index % len(COUNTRIES)
        body = {
            "id": f"gw-{index:04d}",
            "role": "gateway",
            "zone": f"r{region:02d}-{'ab'[index % 2]}",
            "region": f"r{region:02d}",
            "pool": "canary" if index % 25 == 0 else "",
            "version": "1.0.0",
            "ws_url": f"ws://gw-{index:04d}.example:8000/",
            "tcp_addr": f"gw-{index:04d}.example:8001",
            "connections": rng.randrange(0, 1000),
            "capacity": 1000,
            "draining": index % 97 == 0,
        }
        (
            await client.post("/internal/v1/nodes/heartbeat", json=body, headers=cluster)
        ).raise_for_status()

    total = GATEWAYS_PER_REGION * len(COUNTRIES)
    for start in range(0, total, 50):
        await asyncio.gather(*(beat(i) for i in range(start, min(total, start + 50))))

    tenant = {"id": "bench", "name": "Bench"}
    (await client.post("/v1/tenants", json=tenant, headers=admin)).raise_for_status()
    rule = {
        "id": "canary",
        "priority": 1,
        "tenant": "bench",
        "percent": 10,
        "gateway_pool": "canary",
    }
    (await client.post("/v1/grayscale/rules", json=rule, headers=admin)).raise_for_status()

    async def mint(index: int) -> str:
        response = await client.post(
            "/v1/tenants/bench/tokens", json={"account": f"user{index}"}, headers=admin
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    return list(await asyncio.gather(*(mint(i) for i in range(accounts))))


Sender = Callable[[str, dict[str, str]], Awaitable[int]]
"""Sends ``GET target`` with headers and returns the status code."""


class RawConnection(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 client connection (one request at a time).

    The second load generator: it costs a fraction of httpx's CPU per request, so it
    shows what the server can do when the generator is not the bottleneck. It handles
    exactly what uvicorn answers here (``Content-Length`` bodies, no chunking).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._transport: asyncio.Transport | None = None

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        """Connect to ``127.0.0.1:port``."""
        loop = asyncio.get_running_loop()
        _transport, protocol = await loop.create_connection(cls, "127.0.0.1", port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        end = self._buffer.find(b"\r\n\r\n")
        if waiter is None or waiter.done() or end < 0:
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self._buffer) < end + 4 + length:
            return
        del self._buffer[: end + 4 + length]
        waiter.set_result(int(head[0].split(" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("the server closed the connection"))

    async def get(self, target: str, headers: dict[str, str]) -> int:
        """``GET target``; the status code."""
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await self._waiter

    def close(self) -> None:
        """Close the connection."""
        if self._transport is not None:
            self._transport.close()


async def load(
    open_sender: Callable[[], Awaitable[Sender]],
    make_request: Any,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
    server_pid: int,
    name: str,
    client: str,
) -> Phase:
    """Closed-loop load: ``concurrency`` workers, each one request at a time."""
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop = False
    enough = asyncio.Event()

    async def worker(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        send = await open_sender()
        while not stop:
            url, headers = make_request(rng)
            started = time.perf_counter()
            try:
                ok = await send(url, headers) == 200
            except (httpx.HTTPError, OSError):
                ok = False
            if measuring:
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                if len(latencies) >= max_requests:
                    enough.set()
                    return

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring = True
    cpu_before = cpu_seconds(server_pid)
    own_before = time.process_time()
    machine_before = machine_busy_seconds()
    began = time.perf_counter()
    with contextlib.suppress(TimeoutError):  # the usual end: the duration is over
        await asyncio.wait_for(enough.wait(), timeout=duration)
    elapsed = time.perf_counter() - began
    measured = len(latencies)
    cpu = (cpu_seconds(server_pid) - cpu_before) / elapsed
    own_cpu = (time.process_time() - own_before) / elapsed
    others = (machine_busy_seconds() - machine_before) / elapsed - cpu - own_cpu
    measuring = False
    stop = True
    await asyncio.gather(*tasks)
    ordered = sorted(latencies[:measured])
    return Phase(
        name=name,
        client=client,
        requests=measured,
        errors=errors,
        seconds=round(elapsed, 3),
        rps=round(measured / elapsed, 1),
        p50_ms=round(percentile(ordered, 0.50) * 1000, 3),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 3),
        max_ms=round(ordered[-1] * 1000 if ordered else math.nan, 3),
        server_cpu=round(cpu, 3),
        loadgen_cpu=round(own_cpu, 3),
        server_us_per_request=round(cpu / (measured / elapsed) * 1e6, 1) if measured else math.nan,
        others_cpu=round(max(others, 0.0), 3),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, set it up, measure both phases, stop the server."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="cirno-route-bench-") as tmp:
        workdir = Path(tmp)
        geoip = workdir / "bench.mmdb"
        write_geoip(geoip)
        port = free_port()
        server = start_server(workdir, port, geoip)
        pinned = args.pin and pin(server.pid, 0) and pin(0, 1)
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10
            ) as client:
                await wait_ready(client, server)
                started = time.perf_counter()
                tokens = await set_up(client, args.accounts, rng)
                setup_s = time.perf_counter() - started
                admin_header = {"X-Cirno-Admin-Token": ADMIN_TOKEN}

                def ping(_rng: random.Random) -> tuple[str, dict[str, str]]:
                    return "/v1/ping", {}

                def route(r: random.Random) -> tuple[str, dict[str, str]]:
                    token = tokens[r.randrange(len(tokens))]
                    ip = region_ip(r.randrange(len(COUNTRIES)), r)
                    return f"/v1/route?token={token}&ip={ip}", admin_header

                async def httpx_sender() -> Sender:
                    async def send(url: str, headers: dict[str, str]) -> int:
                        return (await client.get(url, headers=headers)).status_code

                    return send

                raw: list[RawConnection] = []

                async def raw_sender() -> Sender:
                    connection = await RawConnection.open(port)
                    raw.append(connection)
                    return connection.get

                common = {
                    "concurrency": args.concurrency,
                    "duration": args.duration,
                    "warmup": args.warmup,
                    "max_requests": args.max_requests,
                    "server_pid": server.pid,
                }
                sample = (await client.get(route(rng)[0], headers=admin_header)).json()
                phases = []
                for generator, sender in (("httpx", httpx_sender), ("raw", raw_sender)):
                    for name, request in (("ping", ping), ("route", route)):
                        phases.append(
                            await load(sender, request, name=name, client=generator, **common)
                        )
                        for connection in raw:
                            connection.close()
                        raw.clear()
        finally:
            server.terminate()
            server.wait(timeout=15)
    rates = {(p.client, p.name): p.rps for p in phases}
    return {
        "benchmark": "route",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pinned": pinned,
        },
        "config": {
            "regions": len(COUNTRIES),
            "gateways": GATEWAYS_PER_REGION * len(COUNTRIES),
            "accounts": args.accounts,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "max_requests": args.max_requests,
            "setup_s": round(setup_s, 2),
        },
        "phases": [asdict(p) for p in phases],
        "route_vs_ping": {
            generator: round(rates[generator, "route"] / rates[generator, "ping"], 3)
            for generator in ("httpx", "raw")
            if rates[generator, "ping"]
        },
        "sample_answer": sample,
    }


def print_table(result: dict[str, Any]) -> None:
    """The phases as a small table."""
    print(
        f"{'endpoint':<10}{'client':<8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
        f"{'errors':>8}{'srv cpu':>9}{'gen cpu':>9}{'others':>8}{'srv µs/req':>12}"
    )
    for phase in result["phases"]:
        print(
            f"{phase['name']:<10}{phase['client']:<8}{phase['rps']:>10.0f}{phase['p50_ms']:>10.2f}"
            f"{phase['p99_ms']:>10.2f}{phase['max_ms']:>10.2f}{phase['errors']:>8}"
            f"{phase['server_cpu']:>9.2f}{phase['loadgen_cpu']:>9.2f}{phase['others_cpu']:>8.2f}"
            f"{phase['server_us_per_request']:>12.0f}"
        )
    print(f"route / ping throughput: {result['route_vs_ping']}")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.route_bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench.route_bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each phase")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per phase")
    parser.add_argument("--accounts", type=int, default=300, help="distinct user tokens")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin server and generator"
    )
    args = parser.parse_args(argv)
    import uvloop

    result: dict[str, Any] = uvloop.run(run(args))
    print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
