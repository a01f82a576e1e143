"""Batched acknowledgements (docs/design.md, "Delivery promises": read index).

The server keeps one read index per (account, device) that only moves forward, so one
ack of the newest stored message covers everything before it. :class:`AckBatcher` is
the sans-I/O decision: it is told of every stored message and says when an ack is due
-- after ``every`` messages, or ``interval`` seconds after the first unacknowledged one,
whichever comes first. Time comes from an injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class AckBatcher:
    """Decides when to ack which message id."""

    def __init__(
        self, *, interval: float, every: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval <= 0 or every < 1:
            raise ValueError("interval must be > 0 and every >= 1")
        self._interval = interval
        self._every = every
        self._clock = clock
        self._newest = 0
        self._count = 0
        self._since: float | None = None

    @property
    def pending(self) -> int:
        """The newest stored id not acknowledged yet, or 0."""
        return self._newest

    def stored(self, message_id: int) -> bool:
        """Note a stored message; True when an ack is due right away (``every`` reached)."""
        self._newest = message_id
        self._count += 1
        if self._since is None:
            self._since = self._clock()
        return self._count >= self._every

    def deadline(self) -> float | None:
        """When the pending ack is due by time (clock units), or None if nothing is pending."""
        return None if self._since is None else self._since + self._interval

    def due(self) -> bool:
        """Whether an ack should be sent now."""
        if not self._newest:
            return False
        deadline = self.deadline()
        return self._count >= self._every or (deadline is not None and self._clock() >= deadline)

    def take(self) -> int:
        """The id to ack now (0 if none); the batch starts over. Call :meth:`failed` with
        it if the ack does not go through."""
        newest = self._newest
        self._newest = 0
        self._count = 0
        self._since = None
        return newest

    def failed(self, message_id: int) -> None:
        """An ack of ``message_id`` failed: keep it pending unless newer ones came since."""
        if message_id and not self._newest:
            self._newest = message_id
            self._count = 1
            self._since = self._clock()
