"""Process runtime shared by every role: logging, uvloop, and clean signal shutdown.

``run_until_signalled`` runs a coroutine function on anyio's asyncio backend with
uvloop, and cancels it on SIGTERM or SIGINT so every task group unwinds and listeners
close before the process exits (exit status 0). Before it starts it tunes the garbage
collector, and while it runs it hands free heap memory back to the kernel
(:mod:`cirno.tuning`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable

import anyio

from cirno.logformat import configure, log_format
from cirno.tuning import memory_trimmer, tune_gc


def setup_logging(role: str) -> None:
    """Log to stderr, level from ``CIRNO_LOG_LEVEL`` (default INFO), format from
    ``CIRNO_LOG_FORMAT`` (``text`` or ``json``, see :mod:`cirno.logformat`); libraries'
    chatter only from WARNING. Raises ValueError for an unknown format."""
    configure(role, os.environ.get("CIRNO_LOG_LEVEL", "INFO").upper(), log_format())


async def _cancel_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            logging.getLogger("cirno").info("received %s, stopping", signal.Signals(signum).name)
            scope.cancel()
            return


def run_until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until it returns or the process gets SIGTERM / SIGINT."""

    async def wrapper() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_signal, tg.cancel_scope)
            trimmer = memory_trimmer()
            if trimmer is not None:
                tg.start_soon(trimmer.run)
            await main()
            tg.cancel_scope.cancel()

    tune_gc()
    anyio.run(wrapper, backend="asyncio", backend_options={"use_uvloop": True})
