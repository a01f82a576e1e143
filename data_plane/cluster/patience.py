"""How loudly to report a failing call to a peer that may only be starting.

Every process retries its peers (a gateway dials its logic nodes, every node polls the
control plane for tenants and heartbeats to its registry). While a cluster starts, or
while ``cirno up`` brings one process up after another, those calls fail for a few
seconds as a matter of course, and a WARNING for each would read like a fault to
whoever watches the start. So a streak of failures is reported at INFO for ``grace``
seconds from its first failure, and at WARNING from then on (once with "still", so the
operator sees how long it has lasted). A success ends the streak and, when the streak
had reached WARNING, says so at INFO; the next failure starts a new streak.

The clock is a parameter, so tests step time instead of sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

STARTUP_GRACE_SECONDS: Final = 15.0
"""How long a peer may fail before it is a warning: a slow start of the control plane
(migrations on MySQL) or of a logic node (its node-id lease) fits within it."""


class Patience:
    """The log level of each failure of one kind of call to one peer."""

    __slots__ = ("_clock", "_grace", "_log", "_since", "_warned")

    def __init__(
        self,
        log: logging.Logger,
        *,
        grace: float = STARTUP_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._grace = grace
        self._clock = clock
        self._since: float | None = None
        self._warned = False

    def failed(self, message: str, *args: object) -> int:
        """Log one failure (``message % args``) at the level the streak has reached;
        returns that level."""
        now = self._clock()
        if self._since is None:
            self._since = now
        lasted = now - self._since
        if lasted < self._grace:
            level = logging.INFO
            self._log.log(level, message + " (retrying)", *args)
        else:
            level = logging.WARNING
            self._log.log(level, message + " (still failing after %.0f s)", *args, lasted)
            self._warned = True
        return level

    def succeeded(self, message: str = "", *args: object) -> None:
        """End the streak; ``message`` is logged at INFO when it had reached WARNING."""
        if self._warned and message:
            self._log.info(message, *args)
        self._since = None
        self._warned = False

    @property
    def failing(self) -> bool:
        """Whether the last call failed."""
        return self._since is not None
