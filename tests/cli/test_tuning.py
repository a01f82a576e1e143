"""Process tuning of the logic node and the gateway (``cirno.tuning``).

The collector settings are checked in a fresh interpreter (freezing changes the process
it runs in); the trimmer runs against this process's real glibc, and its decision rule
against a counter of free bytes the test sets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from cirno.tuning import GEN0_THRESHOLD, Glibc, MemoryTrimmer


def test_tune_gc_freezes_start_up_and_raises_gen0() -> None:
    script = (
        "import gc, json\n"
        "from cirno.tuning import tune_gc\n"
        "before = gc.get_freeze_count()\n"
        "tune_gc()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    before, frozen, threshold = json.loads(out)
    assert before == 0
    assert frozen > 10_000  # every module object start-up created
    assert threshold[0] == GEN0_THRESHOLD
    # The older generations keep CPython's defaults: cycles are still found.
    assert threshold[1:] == [10, 10]


def test_trimmer_trims_what_was_freed_since_its_last_trim() -> None:
    free = [0]
    trims: list[int] = []

    def trim() -> bool:
        # As glibc does: the pages go back, the free chunks stay counted.
        trims.append(free[0])
        return True

    trimmer = MemoryTrimmer(lambda: free[0], trim, threshold=1000, open_files=lambda: 10)
    free[0] = 1000
    assert trimmer.check() is False
    free[0] = 1001
    assert trimmer.check() is True
    assert trimmer.check() is False  # the same free bytes are not trimmed again
    free[0] = 500  # the heap was reused ...
    assert trimmer.check() is False
    free[0] = 1600  # ... and 1,100 bytes freed since
    assert trimmer.check() is True
    assert (trims, trimmer.trims) == ([1001, 1600], 2)
    assert trimmer.collections == 0


def test_a_large_drop_in_connections_collects_before_trimming() -> None:
    files = [100]
    events: list[str] = []
    trimmer = MemoryTrimmer(
        lambda: 0,
        lambda: True,
        open_files=lambda: files[0],
        collect=lambda: events.append(f"collect at {files[0]}"),
        drop=50,
    )
    for count in (100, 5000, 20_000, 19_000):  # up to a peak; 1,000 closing is a blip
        files[0] = count
        trimmer.check()
    assert events == []
    files[0] = 14_000  # a quarter of the peak gone
    trimmer.check()
    trimmer.check()  # the new level is the peak now: no second collection
    assert events == ["collect at 14000"]


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError("VmRSS")


@pytest.mark.skipif(not Glibc().available, reason="not glibc >= 2.33")
def test_glibc_hands_freed_heap_back() -> None:
    glibc = Glibc()
    # Blocks below the mmap threshold live in the heap; keeping every 50th alive leaves
    # the freed ones as holes that glibc keeps until a trim.
    blocks = [bytearray(b"x" * 4000) for _ in range(20_000)]
    kept = blocks[::50]
    del blocks
    assert glibc.free_heap_bytes() > 40 * 1024 * 1024
    before = _rss_kib()
    glibc.trim()
    assert before - _rss_kib() > 30 * 1024
    assert len(kept) == 400


async def _run_once(trimmer: MemoryTrimmer) -> None:
    with anyio.move_on_after(0.2):
        await trimmer.run(interval=0.01)


def test_trimmer_run_checks_periodically() -> None:
    calls: list[int] = []

    def free_bytes() -> int:
        calls.append(1)
        return 0

    trimmer = MemoryTrimmer(free_bytes, lambda: True, open_files=lambda: 10)
    anyio.run(_run_once, trimmer)
    assert len(calls) >= 2
    assert trimmer.trims == 0
