"""Run the benchmarks: ``python -m bench.run [--quick] [--pinned] [--only NAME]``.

For each target (the bare relay baseline first, then ``cirno up`` on SQLite, then the
separate processes on MySQL + Redis) it starts the servers, runs the load, stops them,
prints one table per benchmark and writes ``bench/results/<name>.json`` with the machine,
the configuration, the command line and every figure (the baseline from the same run
included). The 1:1 benchmark runs twice per target: saturating, then rate-limited at
half the throughput it just measured, for the latency at half load.

Then, as selected: the connection benchmark (gateway memory per idle logged-in
connection, and what closing them hands back), logins per second with a new connection
each, and the catch-up of a new device (see their modules).

Unpinned, server and load generator share this machine's cores; with ``--pinned`` the
server's own processes run together on one core and the load generator on another
(:mod:`bench.pinning`), and the results go to ``<name>-pinned.json``. Each result carries
the CPU share of every process and of everything else running meanwhile (``others``),
which says whether the box was quiet. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from bench.catchup_bench import CatchupConfig, run_catchup
from bench.catchup_bench import format_table as catchup_table
from bench.chat_bench import ChatConfig, ChatResult, run_chat
from bench.chat_bench import format_table as chat_table
from bench.conn_bench import ConnConfig, run_connections
from bench.conn_bench import format_table as conn_table
from bench.group_bench import GroupConfig, GroupResult, run_group
from bench.group_bench import format_table as group_table
from bench.login_bench import LoginConfig, run_logins
from bench.login_bench import format_table as login_table
from bench.pinning import available_cpus, own_servers, pinned
from bench.procs import OTHERS, wait_for_quiet
from bench.stats import machine_info
from bench.targets import (
    DEFAULT_MYSQL_URL,
    DEFAULT_REDIS_URL,
    Target,
    bare_relay,
    cirno_mysql_redis,
    cirno_sqlite,
    cirno_workers,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_TARGETS = ("relay", "before", "sqlite", "workers2", "mysql", "workers2-mysql")
DEFAULT_TARGETS = ("relay", "sqlite", "mysql")

QUICK_CHAT = ChatConfig(pairs=10, window=8, duration=2.0, warmup=0.5, drain_timeout=5.0)
QUICK_GROUP = GroupConfig(members=100, messages=10, burst_messages=10, burst_window=4)
QUICK_CONNECTIONS = ConnConfig(connections=500, workers=2, settle=1.0)
LOGIN_IN_FLIGHT = (50, 400)
QUICK_LOGIN = LoginConfig(in_flight=50, duration=2.0, warmup=0.5)
QUICK_CATCHUP = CatchupConfig(messages=5000, senders=10)
BENCHMARKS = ("chat", "group", "connections", "logins", "catchup")

TargetFactory = Callable[[Path], AbstractContextManager[Target]]


def _factories(args: argparse.Namespace) -> dict[str, TargetFactory]:
    return {
        "relay": bare_relay,
        "before": lambda tmp: cirno_sqlite(tmp, args.before),
        "sqlite": cirno_sqlite,
        "workers2": lambda tmp: cirno_workers(tmp, args.redis_url, 2),
        "mysql": lambda tmp: cirno_mysql_redis(tmp, args.mysql_url, args.redis_url),
        "workers2-mysql": lambda tmp: cirno_workers(tmp, args.redis_url, 2, args.mysql_url),
    }


def _targets(args: argparse.Namespace, durable_only: bool = False) -> Iterator[Target]:
    """Start each selected target in turn (stopping the previous one first); pinned
    with ``--pinned``."""
    factories = _factories(args)
    for name in args.targets:
        if durable_only and name == "relay":
            continue
        with (
            tempfile.TemporaryDirectory(prefix=f"cirno-bench-{name}-") as tmp,
            factories[name](Path(tmp)) as target,
        ):
            print(f"== {target.name}: {target.description}", file=sys.stderr, flush=True)
            args.seen_targets[target.name] = {
                "description": target.description,
                "durable": target.durable,
                **target.details,
            }
            if not args.pinned:
                yield target
                continue
            server_cpu, loadgen_cpu = args.cpus
            with pinned(own_servers(target.processes.values()), server_cpu, loadgen_cpu) as pids:
                args.seen_targets[target.name]["pinned"] = {
                    "server_cpu": server_cpu,
                    "server_pids": pids,
                    "loadgen_cpu": loadgen_cpu,
                }
                print(f"   pinned {pids} to cpu {server_cpu}, load to cpu {loadgen_cpu}")
                yield target


def _run_async(func: Callable[..., Any], *args: Any) -> Any:
    return anyio.run(func, *args, backend="asyncio", backend_options={"use_uvloop": True})


def _quiet(args: argparse.Namespace) -> float | None:
    """Wait for other work on the machine to calm down (``--quiet-wait``)."""
    if args.quiet_wait <= 0:
        return None
    load = wait_for_quiet(args.quiet_threshold, args.quiet_wait)
    print(f"   machine load before the run: {load:.0f}% of one core", file=sys.stderr)
    return load


def _others(cpu: dict[str, float]) -> float:
    return cpu.get(OTHERS, 0.0)


def _chat_once(
    args: argparse.Namespace, target: Target, config: ChatConfig, mode: str | None = None
) -> ChatResult:
    """One chat run; again (up to ``--attempts``) while others' work disturbed it.

    Keeps the attempt that other processes disturbed least, and records every
    attempt's background load.
    """
    best: ChatResult | None = None
    noise: list[float] = []
    for _ in range(args.attempts):
        background = _quiet(args)
        result: ChatResult = _run_async(run_chat, target, config)
        result.background_before = background
        if mode is not None:
            result.mode = mode
        print(chat_table([result]), file=sys.stderr, flush=True)
        print(f"   cpu %: {result.cpu_percent}", file=sys.stderr, flush=True)
        noise.append(_others(result.cpu_percent))
        if best is None or _others(result.cpu_percent) < _others(best.cpu_percent):
            best = result
        if noise[-1] <= args.noise_limit:
            break
        print(f"   disturbed ({noise[-1]:.0f}% of a core used by others)", file=sys.stderr)
    assert best is not None
    best.attempts_others = noise
    return best


def run_chat_suite(args: argparse.Namespace, config: ChatConfig) -> list[ChatResult]:
    """Saturation, then half of the measured rate, then each ``--rates`` rate, per target.

    The fixed rates (default: 2,500 msg/s, half of issue #3's 5,000 msg/s target) run
    only below the throughput just measured on a target; on the relay too, so each
    latency at a fixed rate has the generator's and the transport's own beside it.
    """
    results: list[ChatResult] = []
    for target in _targets(args):
        saturated = _chat_once(args, target, config)
        results.append(saturated)
        if not args.no_half_load and saturated.throughput > 0:
            half = ChatConfig(**{**asdict(config), "rate": saturated.throughput / 2})
            results.append(_chat_once(args, target, half, "half load"))
        for rate in args.rates:
            if rate < saturated.throughput:
                fixed = ChatConfig(**{**asdict(config), "rate": rate})
                results.append(_chat_once(args, target, fixed))
    return results


def _group_others(result: GroupResult) -> float:
    return max((_others(p.cpu_percent) for p in result.passes), default=0.0)


def run_group_suite(args: argparse.Namespace, config: GroupConfig) -> list[GroupResult]:
    """The sequential and burst passes on every target (again while disturbed)."""
    results: list[GroupResult] = []
    for target in _targets(args):
        best: GroupResult | None = None
        noise: list[float] = []
        for _ in range(args.attempts):
            background = _quiet(args)
            result: GroupResult = _run_async(run_group, target, config)
            result.background_before = background
            print(group_table([result]), file=sys.stderr, flush=True)
            for one in result.passes:
                print(f"   {one.name} cpu %: {one.cpu_percent}", file=sys.stderr, flush=True)
            noise.append(_group_others(result))
            if best is None or noise[-1] < _group_others(best):
                best = result
            if noise[-1] <= args.noise_limit:
                break
            print(f"   disturbed ({noise[-1]:.0f}% of a core used by others)", file=sys.stderr)
        assert best is not None
        best.attempts_others = noise
        results.append(best)
    return results


def run_connection_suite(args: argparse.Namespace, config: ConnConfig) -> list[Any]:
    """Gateway memory per connection on every target (the relay's front as baseline)."""
    results = []
    for target in _targets(args):
        _quiet(args)
        result = run_connections(target, config)
        print(conn_table([result]), file=sys.stderr, flush=True)
        results.append(result)
    return results


def run_login_suite(args: argparse.Namespace, configs: list[LoginConfig]) -> list[Any]:
    """Logins/s at each number in flight, per target."""
    results = []
    for target in _targets(args):
        for config in configs:
            _quiet(args)
            result = _run_async(run_logins, target, config)
            print(login_table([result]), file=sys.stderr, flush=True)
            print(f"   cpu %: {result.cpu_percent}", file=sys.stderr, flush=True)
            if result.failures:
                print(f"   failures: {result.failures}", file=sys.stderr, flush=True)
            results.append(result)
    return results


def run_catchup_suite(args: argparse.Namespace, config: CatchupConfig) -> list[Any]:
    """The new device's sync on every durable target."""
    results = []
    for target in _targets(args, durable_only=True):
        _quiet(args)
        result = _run_async(run_catchup, target, config)
        print(catchup_table([result]), file=sys.stderr, flush=True)
        results.append(result)
    return results


def _write(name: str, args: argparse.Namespace, config: Any, results: list[Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if args.pinned:
        name = f"{name}-pinned"
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "pinned": args.pinned,
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *args.argv]),
        "quick": args.quick,
        "machine": args.machine,
        "targets": args.seen_targets,
        "config": asdict(config),
        "results": [r.as_dict() for r in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


DEFAULT_FIXED_RATE = 2500.0
"""Half of issue #3's 5,000 durable msg/s: the rate its p99 target is stated at."""


def _rates(text: str) -> list[float]:
    """``--rates`` as a list of positive rates."""
    rates = [float(part) for part in text.split(",") if part.strip()]
    if any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts, seconds not minutes")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="server processes on one core, the load generator on another (bench.pinning)",
    )
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument(
        "--logins-in-flight",
        default=None,
        help="comma-separated logins in flight of the login benchmark (default 50,400)",
    )
    parser.add_argument("--catchup-messages", type=int, default=None)
    parser.add_argument(
        "--targets",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_TARGETS)} (default: "
        f"{','.join(DEFAULT_TARGETS)}, with before after relay when --before is given)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a checkout of the code to compare with (e.g. `git worktree add` of main): "
        "the target 'before' runs the all-in-one from it, in the same run",
    )
    parser.add_argument(
        "--mysql-url", default=os.environ.get("CIRNO_BENCH_MYSQL_URL", DEFAULT_MYSQL_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CIRNO_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    )
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--no-half-load", action="store_true", help="skip the half-load runs")
    parser.add_argument(
        "--rates",
        type=_rates,
        default=None,
        help="comma-separated fixed rates (msg/s) to run the durable targets at after the "
        "half-load run (default 2500, none with --quick; '' for none)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for the machine to be quiet "
        "(default 120, 0 with --quick); the load seen is recorded either way",
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=None,
        help="run a measurement up to this many times while other processes disturb it "
        "and keep the least disturbed (default 3, 1 with --quick)",
    )
    parser.add_argument(
        "--noise-limit",
        type=float,
        default=30.0,
        help="a run is disturbed when others used more than this %% of one core",
    )
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=20.0,
        help="'quiet' means at most this %% of one core busy",
    )
    args = parser.parse_args(argv)
    args.argv = argv
    if args.rates is None:
        args.rates = [] if args.quick else [DEFAULT_FIXED_RATE]
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 120.0
    if args.attempts is None:
        args.attempts = 1 if args.quick else 3
    args.only = BENCHMARKS if args.only is None else [b for b in args.only.split(",") if b]
    if set(args.only) - set(BENCHMARKS):
        parser.error(f"unknown benchmarks: {', '.join(sorted(set(args.only) - set(BENCHMARKS)))}")
    args.cpus = None
    if args.pinned:
        cpus = available_cpus()
        if len(cpus) < 2:
            parser.error("--pinned needs two cores")
        args.cpus = (cpus[0], cpus[1])
    if args.targets is None:
        targets = list(DEFAULT_TARGETS)
        if args.before is not None:
            targets.insert(1, "before")
        args.targets = ",".join(targets)
    args.targets = [t for t in str(args.targets).split(",") if t]
    if "before" in args.targets and args.before is None:
        parser.error("the target 'before' needs --before DIR")
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def _chat_config(args: argparse.Namespace) -> ChatConfig:
    config = QUICK_CHAT if args.quick else ChatConfig()
    changes = {
        key: value
        for key, value in (
            ("pairs", args.pairs),
            ("window", args.window),
            ("duration", args.duration),
        )
        if value is not None
    }
    return ChatConfig(**{**asdict(config), **changes})


def _group_config(args: argparse.Namespace) -> GroupConfig:
    config = QUICK_GROUP if args.quick else GroupConfig()
    changes: dict[str, Any] = {}
    if args.members is not None:
        changes["members"] = args.members
    if args.messages is not None:
        changes["messages"] = changes["burst_messages"] = args.messages
    return GroupConfig(**{**asdict(config), **changes})


def _run_new_benchmarks(args: argparse.Namespace) -> None:
    """Connections, logins and catch-up (issue #17), as selected."""
    if "connections" in args.only:
        config = QUICK_CONNECTIONS if args.quick else ConnConfig()
        if args.connections is not None:
            config = ConnConfig(**{**asdict(config), "connections": args.connections})
        results = run_connection_suite(args, config)
        print("\nidle logged-in connections (memory of the gateway)\n" + conn_table(results))
        print(f"-> {_write('connections', args, config, results)}")
    if "logins" in args.only:
        in_flight: tuple[int, ...] = LOGIN_IN_FLIGHT
        if args.logins_in_flight:
            in_flight = tuple(int(n) for n in args.logins_in_flight.split(","))
        configs = [QUICK_LOGIN] if args.quick else [LoginConfig(in_flight=n) for n in in_flight]
        results = run_login_suite(args, configs)
        print("\nlogins, a new connection each (latencies in ms)\n" + login_table(results))
        print(f"-> {_write('logins', args, configs[0], results)}")
    if "catchup" in args.only:
        catchup = QUICK_CATCHUP if args.quick else CatchupConfig()
        if args.catchup_messages is not None:
            catchup = CatchupConfig(**{**asdict(catchup), "messages": args.catchup_messages})
        results = run_catchup_suite(args, catchup)
        print("\ncatch-up of a new device (seconds)\n" + catchup_table(results))
        print(f"-> {_write('catchup', args, catchup, results)}")


def main(argv: list[str] | None = None) -> int:
    """Run what the command line selects; 0 on completion."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.machine = machine_info()
    args.seen_targets = {}
    if args.pinned:
        args.machine["note"] = (
            f"server processes pinned to cpu {args.cpus[0]}, the load generator to cpu "
            f"{args.cpus[1]}; MariaDB and Redis not pinned (shared with other work)"
        )
    print(f"machine: {json.dumps(args.machine)}", file=sys.stderr, flush=True)
    if "chat" in args.only:
        chat_config = _chat_config(args)
        chat_results = run_chat_suite(args, chat_config)
        print("\n1:1 chat (latencies in ms)\n" + chat_table(chat_results))
        print(f"-> {_write('chat', args, chat_config, chat_results)}")
    if "group" in args.only:
        group_config = _group_config(args)
        group_results = run_group_suite(args, group_config)
        print(f"\ngroup of {group_config.members} (latencies in ms)\n" + group_table(group_results))
        print(f"-> {_write('group', args, group_config, group_results)}")
    _run_new_benchmarks(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
