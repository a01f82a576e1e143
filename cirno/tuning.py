"""Process tuning of the long-running roles (logic node, gateway): garbage collector
and the memory glibc keeps after a crowd of connections leaves.

Garbage collector
-----------------
CPython runs a young-generation collection every 700 net container allocations, and
every so many of those a full one over every tracked object. A gateway holding 20,000
connections tracks millions of objects that live as long as their connection, and a
login burst allocates fast: profiles put 25-40 % of the gateway's CPU in the collector,
with full collections stalling the loop for 0.5-1.5 s. Nothing here turns the
collector off (reference cycles are still found and freed); :func:`tune_gc`
- collects once and *freezes* what start-up allocated (modules, settings, protobuf
  descriptors: millions of objects that are never garbage), so no collection walks
  them again;
- raises the young generation's threshold from 700 to :data:`GEN0_THRESHOLD`, so the
  collector runs about 70 times less often, each run doing proportionally more work
  on objects that are mostly still young (cheap) instead of promoting them.

Memory handed back
------------------
When connections close, CPython and glibc free their memory to the process's heap, but
glibc returns the top of a heap to the kernel only when it is free, so a gateway that
held 20,000 connections keeps hundreds of MB after they are gone. :class:`MemoryTrimmer`
runs a full collection after a large drop in open descriptors (closed connections) and
looks at glibc's free heap bytes (``mallinfo2``) every ``interval`` seconds and calls
``malloc_trim(0)`` (which releases every free page, not only the top) once ``threshold``
more bytes lie free than after its last trim. Where glibc is not the allocator (musl, macOS) both
calls are absent and the trimmer does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Callable

import anyio

log = logging.getLogger("cirno.tuning")

GEN0_THRESHOLD = 50_000
TRIM_INTERVAL = 5.0
TRIM_THRESHOLD = 16 * 1024 * 1024
DROP_MIN = 1000


def tune_gc(gen0_threshold: int = GEN0_THRESHOLD) -> None:
    """Freeze what start-up allocated and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


class _MallInfo2(ctypes.Structure):
    # The ctypes layout of glibc's struct mallinfo2.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


class Glibc:
    """``mallinfo2`` and ``malloc_trim`` of the C library, when it is glibc ≥ 2.33."""

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = None
        name = ctypes.util.find_library("c")
        if name is None:
            return
        libc = ctypes.CDLL(name)
        if hasattr(libc, "mallinfo2") and hasattr(libc, "malloc_trim"):
            libc.mallinfo2.restype = _MallInfo2
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            self._libc = libc

    @property
    def available(self) -> bool:
        """Whether both calls exist here."""
        return self._libc is not None

    def free_heap_bytes(self) -> int:
        """Bytes glibc holds free in its heaps (``fordblks``); 0 without glibc."""
        if self._libc is None:
            return 0
        return int(self._libc.mallinfo2().fordblks)

    def trim(self) -> bool:
        """Give every free heap page back to the kernel; whether any was released."""
        if self._libc is None:
            return False
        return bool(self._libc.malloc_trim(0))


def open_files() -> int:
    """How many file descriptors this process holds (its connections, mostly)."""
    return len(os.listdir("/proc/self/fd"))


class MemoryTrimmer:
    """Frees what a crowd of closed connections left and hands it to the kernel.

    Every check: when the open descriptors fell by at least ``drop`` (or a quarter of
    their peak, whichever is more) since the peak, a full collection frees the closed
    connections' reference cycles first. A young-generation threshold of 50,000 means an
    idle process would not collect them for a long time, and those of connections that
    lived long sit in the oldest generation anyway. Then, as on any check, it calls
    ``malloc_trim`` once ``threshold`` more bytes of heap lie free than after the last
    trim. A trim releases the pages of free chunks but leaves the chunks on glibc's free
    lists, so the free byte count stays where it was: the trimmer compares with that
    level (lowered whenever the heap is reused) rather than trimming the same pages again.
    """

    def __init__(
        self,
        free_bytes: Callable[[], int],
        trim: Callable[[], bool],
        threshold: int = TRIM_THRESHOLD,
        *,
        open_files: Callable[[], int] = open_files,
        collect: Callable[[], object] = gc.collect,
        drop: int = DROP_MIN,
    ) -> None:
        self._free_bytes = free_bytes
        self._trim = trim
        self._open_files = open_files
        self._collect = collect
        self.threshold = threshold
        self.drop = drop
        self.trims = 0
        self.collections = 0
        self._trimmed_level = 0
        self._peak_files = 0

    def check(self) -> bool:
        """Collect after a large drop, trim if enough is free; whether it trimmed."""
        files = self._open_files()
        self._peak_files = max(self._peak_files, files)
        if self._peak_files - files >= max(self.drop, self._peak_files // 4):
            self._collect()
            self.collections += 1
            self._peak_files = files
        free = self._free_bytes()
        self._trimmed_level = min(self._trimmed_level, free)
        if free - self._trimmed_level <= self.threshold:
            return False
        self._trim()
        self.trims += 1
        self._trimmed_level = self._free_bytes()
        log.debug("returned up to %d free heap bytes to the kernel", free)
        return True

    async def run(self, interval: float = TRIM_INTERVAL) -> None:
        """Check every ``interval`` seconds, forever."""
        while True:
            await anyio.sleep(interval)
            self.check()


def memory_trimmer() -> MemoryTrimmer | None:
    """A trimmer over this process's glibc, or None where glibc's calls are missing."""
    glibc = Glibc()
    if not glibc.available:
        return None
    return MemoryTrimmer(glibc.free_heap_bytes, glibc.trim)
