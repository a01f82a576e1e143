"""Waiting in tests for state that sockets change, never for time to pass."""

from __future__ import annotations

from collections.abc import Callable

import anyio

POLL_S = 0.001


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return as soon as ``condition()`` holds, checking every millisecond; fail the
    test if it still does not after ``timeout`` seconds (a bound, not a delay)."""
    for _ in range(int(timeout / POLL_S)):
        if condition():
            return
        await anyio.sleep(POLL_S)
    raise AssertionError(f"condition not reached within {timeout:g} s")
