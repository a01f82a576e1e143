"""The gateway's time, behind a small interface so tests advance it instead of sleeping.

Every timer of a connection reads a :class:`Clock`: the login deadline
(:meth:`Clock.move_on_after`), the idle timeout (:meth:`Clock.call_at` per tick that has
a deadline, against the connections' last activity, which the transport stamps with
:meth:`Clock.now`), and the
periodic loops (location re-assert, registry heartbeats; :meth:`Clock.sleep`).

:class:`LoopClock` is the real one: the event loop's monotonic time and its timers, at
no cost over calling them directly. A test passes a clock it advances by hand
(``tests/gateway/fake_clock.py``); the guarantees below are what both keep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

import anyio


class Timer(Protocol):
    """A scheduled callback."""

    def cancel(self) -> None:
        """Do not run the callback (no-op once it ran or was cancelled)."""


class Clock(Protocol):
    """Monotonic time in seconds, and the ways to wait for it.

    Guarantees: :meth:`now` never goes backwards; a callback of :meth:`call_at` runs on
    the event loop's thread, once, no earlier than ``when``; timers due at the same time
    run in the order they were scheduled.
    """

    def now(self) -> float:
        """The current time; only differences between two readings mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed (cancellable)."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` once :meth:`now` reaches ``when``."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope cancelled ``seconds`` from now (as :func:`anyio.move_on_after`)."""
        ...


class LoopClock:
    """The running event loop's clock (create it inside the loop)."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        """``loop.time()``."""
        return self._loop.time()

    async def sleep(self, seconds: float) -> None:
        """:func:`anyio.sleep`."""
        await anyio.sleep(seconds)

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """``loop.call_at``: one loop timer, no task."""
        return self._loop.call_at(when, callback)

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """:func:`anyio.move_on_after`."""
        return anyio.move_on_after(seconds)
