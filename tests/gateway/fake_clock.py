"""A :class:`~data_plane.gateway.clock.Clock` that moves only when a test advances it."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio


class FakeTimer:
    """A timer of :class:`FakeClock`."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback."""
        self.cancelled = True


class FakeClock:
    """Starts at ``start``; :meth:`advance` moves it and runs the timers that fall due,
    in time order (ties in scheduling order), each with :meth:`now` at its due time."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The current fake time."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeTimer:
        """Schedule ``callback`` for fake time ``when``."""
        timer = FakeTimer(callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock was advanced by ``seconds``."""
        woken = anyio.Event()
        timer = self.call_at(self._now + seconds, woken.set)
        try:
            await woken.wait()
        finally:
            timer.cancel()

    @contextmanager
    def move_on_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        """A cancel scope cancelled once the clock was advanced by ``seconds``."""
        with anyio.CancelScope() as scope:
            timer = self.call_at(self._now + seconds, scope.cancel)
            try:
                yield scope
            finally:
                timer.cancel()

    def pending(self) -> int:
        """Timers scheduled and neither run nor cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, run what falls due, then let every task the
        timers woke run until it blocks again."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.cancel()  # runs once
                timer.callback()
        self._now = target
        await anyio.wait_all_tasks_blocked()
