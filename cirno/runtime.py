"""Process runtime shared by every role: logging, uvloop, and clean signal shutdown.

``run_until_signalled`` runs a coroutine function on anyio's asyncio backend with
uvloop, and cancels it on SIGTERM or SIGINT so every task group unwinds and listeners
close before the process exits (exit status 0).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable

import anyio


def setup_logging(role: str) -> None:
    """Log to stderr, level from ``CIRNO_LOG_LEVEL`` (default INFO)."""
    logging.basicConfig(
        level=os.environ.get("CIRNO_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # Every registry heartbeat and tenant poll would be an INFO line otherwise.
    logging.getLogger("httpx").setLevel(logging.WARNING)


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
            await main()
            tg.cancel_scope.cancel()

    anyio.run(wrapper, backend="asyncio", backend_options={"use_uvloop": True})
