"""CPU time of the processes taking part in a run, read from ``/proc`` (Linux only).

With server and load generator sharing two cores, "who used the CPU" is half of the
explanation of a number, so every run samples each process's user+system time before
and after its measured window. Only reads: nothing here signals or changes a process.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SELF = "loadgen"
ALL = "all"
OTHERS = "others"


def stat_cpu(stat_path: Path) -> tuple[str, float] | None:
    """The name and user + system CPU seconds in a ``/proc`` ``stat`` file (of a
    process: all its threads; of a ``task/<tid>``: that thread), None once it is gone."""
    try:
        stat = stat_path.read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return name, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all threads), or None if it is gone."""
    found = stat_cpu(Path(f"/proc/{pid}/stat"))
    return None if found is None else found[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in task.read_text().split())
        except OSError:
            continue
    return found


def role_of(pid: int) -> str:
    """A short name for a process: the ``cirno`` role or the program name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return str(pid)
    for role in ("control", "logic", "gateway"):
        if role in argv:
            return role
    return Path(argv[0]).name if argv and argv[0] else str(pid)


def find_by_name(names: Iterable[str]) -> dict[str, int]:
    """Pids of running programs whose ``comm`` is one of ``names`` (first match each)."""
    wanted = set(names)
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in wanted and comm not in found:
            found[comm] = int(entry.name)
    return found


def system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from the ``cpu`` line of /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[1:9]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / _CLOCK_TICKS


def machine_load(interval: float = 1.0) -> float:
    """Percent of one core the whole machine used over the next ``interval`` seconds."""
    before = system_busy_seconds()
    time.sleep(interval)
    return (system_busy_seconds() - before) / interval * 100


def wait_for_quiet(
    threshold: float, max_wait: float, *, settle: int = 3, interval: float = 1.0
) -> float:
    """Wait (at most ``max_wait`` s) until ``settle`` consecutive seconds each used at
    most ``threshold`` percent of one core; returns the load last measured.

    Called while our own servers are idle, so what it sees is other people's work.
    """
    deadline = time.monotonic() + max_wait
    quiet = 0
    load = 0.0
    while quiet < settle:
        load = machine_load(interval)
        quiet = quiet + 1 if load <= threshold else 0
        if time.monotonic() >= deadline:
            break
    return round(load, 1)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds used by named processes (and this one) between start and stop."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._before: dict[str, float] = {}
        self._elapsed_start = 0.0

    def start(self, now: float) -> None:
        """Sample every process at ``now`` (a ``time.perf_counter`` value)."""
        self._elapsed_start = now
        self._before = {SELF: _self_cpu(), ALL: system_busy_seconds()}
        for name, pid in self._pids.items():
            value = cpu_seconds(pid)
            if value is not None:
                self._before[name] = value

    def stop(self, now: float) -> dict[str, float]:
        """Each process's share of one core over the window, in percent.

        ``all`` is the whole machine (up to cores × 100) and ``others`` what processes
        outside the run used meanwhile: other engineers' work on a shared box.
        """
        elapsed = max(now - self._elapsed_start, 1e-9)
        after = {SELF: _self_cpu(), ALL: system_busy_seconds()}
        for name, pid in self._pids.items():
            value = cpu_seconds(pid)
            if value is not None:
                after[name] = value
        shares = {
            name: round((after[name] - before) / elapsed * 100, 1)
            for name, before in self._before.items()
            if name in after
        }
        ours = sum(value for name, value in shares.items() if name != ALL)
        shares[OTHERS] = round(max(0.0, shares[ALL] - ours), 1)
        return shares
