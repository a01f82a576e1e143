"""Where the server's CPU goes at saturation: ``python -m bench.profile``.

Theory of operation
-------------------
Starts a target (the SQLite all-in-one, or MySQL + Redis), pins its processes to one
core and this generator to another (as ``bench.run --pinned``), drives a workload at
saturation (1:1 chat, 50 pairs with 32 in flight each; or logins, 400 in flight, each a
new WebSocket connection), and over its measured window samples the logic node and the gateway with
py-spy (``--gil``: only the thread holding the GIL is sampled, so a sample is Python
work being done, never a thread waiting). Each sample is charged to the innermost frame
that says what the work is for (:func:`area_of`), so the table reads "this share of the
process's Python work is the wire codec, this share the message store", beside each
process's CPU µs per message (or login) from ``/proc`` and each thread's share of it.

What it cannot see: time in C code called without a Python frame on top of it (uvloop
callbacks, socket syscalls) is charged to ``event loop``, and CPU spent outside the GIL
(SQLite executing a statement releases it) shows in the thread table, not in the areas.
Raw py-spy stacks are kept beside the JSON (``<process>.raw``) for a flame graph.
py-spy samples 100 times a second without stopping the process (``--nonblocking``):
stopping it for each sample halved the all-in-one's throughput, so the profile would
describe a different load than the one measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bench.chat_bench import ChatConfig, run_chat
from bench.chat_bench import format_table as chat_table
from bench.login_bench import LoginConfig, run_logins
from bench.login_bench import format_table as login_table
from bench.pinning import available_cpus, own_servers, pinned
from bench.procs import stat_cpu
from bench.targets import (
    DEFAULT_MYSQL_URL,
    DEFAULT_REDIS_URL,
    Target,
    cirno_mysql_redis,
    cirno_sqlite,
)

PROFILED = ("logic", "gateway")
"""The processes profiled, by role (a topology numbers them: ``logic-1``)."""

AREAS: tuple[tuple[str, str], ...] = (
    ("data_plane/logic/handlers/", "handlers"),
    ("data_plane/logic/pushes.py", "push & answer"),
    ("data_plane/logic/context.py", "push & answer"),
    ("data_plane/logic/", "logic node other"),
    ("data_plane/storage/messages/", "message store"),
    ("data_plane/storage/sessions/", "sessions"),
    ("data_plane/transport/", "transport"),
    ("data_plane/wire/", "wire codec"),
    ("data_plane/gateway/", "gateway"),
    ("data_plane/cluster/", "cluster links"),
    ("aiosqlite/", "drivers (SQL, Redis)"),
    ("sqlite3/", "drivers (SQL, Redis)"),
    ("aiomysql/", "drivers (SQL, Redis)"),
    ("pymysql/", "drivers (SQL, Redis)"),
    ("redis/", "drivers (SQL, Redis)"),
    ("google/protobuf/", "protobuf"),
    ("prometheus_client/", "metrics"),
    ("picows", "transport"),
    ("asyncio/", "event loop"),
    ("anyio/", "event loop"),
    ("concurrent/futures/", "event loop"),
    ("threading.py", "event loop"),
    ("queue.py", "event loop"),
)
"""Path fragment → area, first match wins (the logic node's own modules before the
catch-all ``data_plane/logic/``)."""


def area_of(frame: str) -> str | None:
    """The area of one py-spy frame (``function (path:line)``), None when it says
    nothing (a frame of the interpreter's start-up, say)."""
    for fragment, area in AREAS:
        if fragment in frame:
            return area
    return None


def summarize_raw(lines: Iterator[str]) -> dict[str, Any]:
    """Areas (share of samples, by the innermost frame with an area) and the ten
    functions with the most samples of their own, from py-spy's raw output."""
    areas: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        functions[frames[-1]] += count
        area = next((a for f in reversed(frames) if (a := area_of(f)) is not None), None)
        areas[area or "event loop"] += count
    share = {name: round(100 * n / total, 1) for name, n in areas.most_common()} if total else {}
    top = [(name, round(100 * n / total, 1)) for name, n in functions.most_common(10)]
    return {"samples": total, "areas_percent": share, "top_functions_percent": top}


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``: the main thread (the event loop) as
    ``event loop``, the others by name and thread id."""
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        found = stat_cpu(task / "stat")
        if found is None:
            continue
        name, used = found
        seconds["event loop" if task.name == str(pid) else f"{name}/{task.name}"] = used
    return seconds


def busiest(used: dict[str, float], shown: int = 3) -> dict[str, float]:
    """The event loop's thread and the ``shown`` busiest others by name; the rest
    summed as ``N more threads`` (idle pool threads each wake a few times a second)."""
    loop = {"event loop": used["event loop"]} if "event loop" in used else {}
    others = sorted(((t, s) for t, s in used.items() if t != "event loop"), key=lambda x: -x[1])
    rest = others[shown:]
    if rest:
        others = [*others[:shown], (f"{len(rest)} more threads", sum(s for _, s in rest))]
    return {**loop, **dict(others[: shown + 1])}


def _record(py_spy: str, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    command = [
        py_spy,
        "record",
        "--gil",
        "--nonblocking",
        "-r",
        "100",
        "-d",
        str(int(seconds)),
        "-f",
        "raw",
    ]
    return subprocess.Popen(
        [*command, "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def _target(name: str, tmp: Path) -> Iterator[Target]:
    if name == "sqlite":
        with cirno_sqlite(tmp) as target:
            yield target
    else:
        mysql = os.environ.get("CIRNO_BENCH_MYSQL_URL", DEFAULT_MYSQL_URL)
        redis = os.environ.get("CIRNO_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
        with cirno_mysql_redis(tmp, mysql, redis) as target:
            yield target


@dataclass(frozen=True)
class Workload:
    """What the profiled run does: its name, the unit a figure is per, its warm-up and
    measured window, and how to run it (returns the result's JSON form, its rate of
    units per second, and the one-line table)."""

    name: str
    unit: str
    warmup: float
    duration: float
    run: Callable[[Target], tuple[dict[str, Any], float, str]]


def chat_workload(duration: float, warmup: float, rate: float | None = None) -> Workload:
    """1:1 chat (``bench.chat_bench``'s defaults: 50 pairs, 32 in flight), at saturation
    or at ``rate`` messages per second in all."""
    config = ChatConfig(duration=duration, warmup=warmup, rate=rate)

    def run(target: Target) -> tuple[dict[str, Any], float, str]:
        result = anyio.run(
            run_chat, target, config, backend="asyncio", backend_options={"use_uvloop": True}
        )
        return result.as_dict(), result.throughput, chat_table([result])

    name = "chat" if rate is None else f"chat{rate:.0f}"
    return Workload(name, "message", warmup, duration, run)


def login_workload(duration: float, warmup: float, in_flight: int = 400) -> Workload:
    """Logins, each a new WebSocket connection, ``in_flight`` at once."""
    config = LoginConfig(in_flight=in_flight, duration=duration, warmup=warmup)

    def run(target: Target) -> tuple[dict[str, Any], float, str]:
        result = anyio.run(
            run_logins, target, config, backend="asyncio", backend_options={"use_uvloop": True}
        )
        return result.as_dict(), result.logins_per_s, login_table([result])

    return Workload("logins", "login", warmup, duration, run)


def profile(target_name: str, workload: Workload, out: Path, py_spy: str) -> dict[str, Any]:
    """Run ``workload`` on ``target_name`` with the profiler attached over its measured
    window; the summary (also written to ``out/profile-<workload>-<target>.json``)."""
    cpus = available_cpus()
    if len(cpus) < 2:
        raise SystemExit("bench.profile pins server and load apart: it needs two cores")
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{workload.name}-{target_name}"
    with tempfile.TemporaryDirectory() as tmp, _target(target_name, Path(tmp)) as target:
        procs = {
            name: pid for name, pid in target.processes.items() if name.split("-")[0] in PROFILED
        }
        with pinned(own_servers(target.processes.values()), cpus[0], cpus[1]):
            threads_before: dict[str, dict[str, float]] = {}
            spies: list[subprocess.Popen[bytes]] = []

            def attach() -> None:
                time.sleep(workload.warmup)
                for name, pid in procs.items():
                    threads_before[name] = thread_cpu(pid)
                    raw = out / f"{stem}-{name}.raw"
                    spies.append(_record(py_spy, pid, workload.duration, raw))

            starter = threading.Thread(target=attach)
            starter.start()
            result, rate, table = workload.run(target)
            starter.join()
            threads_after = {name: thread_cpu(pid) for name, pid in procs.items()}
            for spy in spies:
                spy.wait()
    summary: dict[str, Any] = {
        "target": target_name,
        "workload": workload.name,
        "unit": workload.unit,
        "result": result,
        "processes": {},
    }
    per_unit = 1e6 / (rate * workload.duration) if rate > 0 else 0.0
    for name in procs:
        before, after = threads_before.get(name, {}), threads_after[name]
        used = {thread: after[thread] - before.get(thread, 0.0) for thread in after}
        raw = out / f"{stem}-{name}.raw"
        stacks = summarize_raw(iter(raw.read_text().splitlines())) if raw.exists() else {}
        summary["processes"][name] = {
            "cpu_us_per_unit": round(sum(used.values()) * per_unit, 1),
            "thread_cpu_us_per_unit": {
                thread: round(seconds * per_unit, 1) for thread, seconds in busiest(used).items()
            },
            **stacks,
        }
    (out / f"profile-{stem}.json").write_text(json.dumps(summary, indent=2))
    print(table)
    print(format_profile(summary))
    return summary


def format_profile(summary: dict[str, Any]) -> str:
    """The per-process tables: CPU per unit, its threads, and the areas."""
    unit = summary["unit"]
    lines: list[str] = []
    for name, data in summary["processes"].items():
        lines.append(f"\n{name}: {data['cpu_us_per_unit']} µs CPU per {unit}")
        for thread, us in data["thread_cpu_us_per_unit"].items():
            lines.append(f"  thread {thread:<24} {us:>7.1f} µs/{unit}")
        lines.append(f"  Python work by area ({data.get('samples', 0)} GIL samples):")
        for area, share in data.get("areas_percent", {}).items():
            lines.append(f"    {area:<22} {share:>5.1f} %")
        lines.append("  functions with the most samples of their own:")
        for function, share in data.get("top_functions_percent", []):
            lines.append(f"    {share:>5.1f} %  {function[:100]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.profile [--workload chat|logins] [--target sqlite|mysql]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--target", choices=("sqlite", "mysql"), default="sqlite")
    parser.add_argument("--workload", choices=("chat", "logins"), default="chat")
    parser.add_argument(
        "--rate", type=float, default=None, help="chat: messages/s in all (default: saturation)"
    )
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/profile"))
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("bench.profile needs py-spy (pip install py-spy)")
    if args.workload == "chat":
        workload = chat_workload(args.duration, args.warmup, args.rate)
    else:
        workload = login_workload(args.duration, args.warmup)
    profile(args.target, workload, args.out, py_spy)


if __name__ == "__main__":
    main()
