"""The pinned mode (``python -m bench.run --pinned``): server on one core, load on another.

Issue #17 compares servers the way their users do: every server process pinned
together to one core, the load generator pinned to another, so a figure says what one
core of server does, whatever the generator costs. Pinning is per thread on Linux
(``sched_setaffinity`` of a pid moves only its main thread), so every thread listed in
``/proc/<pid>/task`` is moved, and each process's descendants with it; threads and
children created later inherit the mask. Shared servers that other people's work also
uses (MariaDB, Redis) are left where they are: pinning them would change their runs, not
just ours, and the report says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procs import children

SHARED_SERVERS = frozenset({"mariadbd", "mysqld", "redis-server"})


def available_cpus() -> list[int]:
    """The cores this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid.name) for tid in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for child in children(pid):
        found.extend(_descendants(child))
    return found


def pin(pids: Iterable[int], cpus: set[int]) -> list[int]:
    """Move every thread of ``pids`` and of their descendants to ``cpus``; the pids moved.

    A process that exits meanwhile is skipped.
    """
    moved: list[int] = []
    for root in pids:
        for pid in _descendants(root):
            for tid in _threads(pid):
                try:
                    os.sched_setaffinity(tid, cpus)
                except OSError:
                    continue
            moved.append(pid)
    return moved


def affinity(pid: int) -> set[int]:
    """The cores ``pid``'s main thread may run on."""
    return set(os.sched_getaffinity(pid))


def comm(pid: int) -> str:
    """The program name of ``pid`` ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def own_servers(pids: Iterable[int]) -> list[int]:
    """``pids`` without the shared database servers (see the module docstring)."""
    return [pid for pid in pids if comm(pid) not in SHARED_SERVERS]


@contextmanager
def pinned(server_pids: Iterable[int], server_cpu: int, loadgen_cpu: int) -> Iterator[list[int]]:
    """Pin the server processes to ``server_cpu`` and this process to ``loadgen_cpu``.

    Yields the server pids pinned; this process gets its former mask back afterwards
    (the servers are stopped by then, or keep their pin).
    """
    before = os.sched_getaffinity(0)
    moved = pin(server_pids, {server_cpu})
    # Only this process's own threads: the servers may be its children.
    for tid in _threads(os.getpid()):
        os.sched_setaffinity(tid, {loadgen_cpu})
    try:
        yield moved
    finally:
        for tid in _threads(os.getpid()):
            try:
                os.sched_setaffinity(tid, before)
            except OSError:
                continue
