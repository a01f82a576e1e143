"""Login benchmark: logins per second when every login is a new WebSocket connection.

Theory of operation
-------------------
``in_flight`` client loops run in this process. Each one, over and over: opens a new
WebSocket connection (from one of several loopback source addresses, so that the
sockets closed before it, waiting in TIME_WAIT, do not use up the ephemeral ports),
logs in as a new account, and closes the connection. The latency of one login runs
from the start of the TCP connect to the login response, so a SYN the server's backlog
dropped (and the client retried a second later) shows in it. Throughput counts logins
completed inside the measured window (after a warm-up); latencies are of logins
started inside it.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from bench.client import BenchError, open_client
from bench.procs import CpuMeter
from bench.stats import Summary, summarize
from bench.targets import Target

SOURCE_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(10, 18))


@dataclass(frozen=True)
class LoginConfig:
    """Logins in flight, and the warm-up and measured window in seconds."""

    in_flight: int = 200
    duration: float = 10.0
    warmup: float = 2.0
    timeout: float = 15.0


@dataclass
class LoginResult:
    """What one run measured."""

    target: str
    config: LoginConfig
    logins_per_s: float
    latency: Summary
    completed: int
    failed: int
    cpu_percent: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    """Failed logins by reason (the refusal's status, the close code, a timeout)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, with CPU µs per login of each process."""
        out = asdict(self)
        out["latency"] = self.latency.as_dict()
        out["logins_per_s"] = round(self.logins_per_s, 1)
        out["cpu_us_per_login"] = (
            {
                name: round(share / 100 / self.logins_per_s * 1e6, 1)
                for name, share in self.cpu_percent.items()
            }
            if self.logins_per_s > 0
            else {}
        )
        return out


async def run_logins(target: Target, config: LoginConfig) -> LoginResult:
    """Run the client loops through warm-up and window, then let the last finish."""
    run_id = uuid.uuid4().hex[:6]
    counter = itertools.count()
    start = time.perf_counter()
    window_start = start + config.warmup
    window_end = window_start + config.duration
    latencies: list[float] = []
    completed = failed = 0
    failures: dict[str, int] = {}

    async def loop(index: int) -> None:
        nonlocal completed, failed
        source = SOURCE_ADDRESSES[index % len(SOURCE_ADDRESSES)]
        while time.perf_counter() < window_end:
            account = f"{run_id}l{next(counter)}"
            began = time.perf_counter()
            try:
                conn = await open_client(
                    target.ws_url,
                    target.token_for(account),
                    timeout=config.timeout,
                    local_host=source,
                )
            except (BenchError, TimeoutError, OSError) as exc:
                failed += 1
                reason = _reason(exc, time.perf_counter() - began)
                failures[reason] = failures.get(reason, 0) + 1
                continue
            done = time.perf_counter()
            conn.close()
            if window_start <= done < window_end:
                completed += 1
            if window_start <= began < window_end:
                latencies.append(done - began)

    meter = CpuMeter(target.processes)
    async with anyio.create_task_group() as tg:
        for index in range(config.in_flight):
            tg.start_soon(loop, index)
        await anyio.sleep(window_start - time.perf_counter())
        meter.start(time.perf_counter())
        await anyio.sleep(window_end - time.perf_counter())
        cpu = meter.stop(time.perf_counter())
    return LoginResult(
        target=target.name,
        config=config,
        logins_per_s=completed / config.duration,
        latency=summarize(latencies),
        completed=completed,
        failed=failed,
        cpu_percent=cpu,
        failures=failures,
    )


def _reason(exc: BaseException, elapsed: float) -> str:
    """A short label of why a login failed, for the failure counts."""
    if isinstance(exc, TimeoutError):
        return f"timeout after {elapsed:.0f} s"
    return f"{type(exc).__name__}: {exc}"[:120]


def format_table(results: list[LoginResult]) -> str:
    """One line per run (latencies in ms)."""
    head = (
        f"{'target':<8} {'in flight':>9} {'logins/s':>9} {'p50':>7} {'p99':>7} {'max':>7} "
        f"{'failed':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lat = r.latency
        lines.append(
            f"{r.target:<8} {r.config.in_flight:>9} {r.logins_per_s:>9.0f} "
            f"{_fmt(lat.p50_ms):>7} {_fmt(lat.p99_ms):>7} {_fmt(lat.max_ms):>7} {r.failed:>6}"
        )
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"
