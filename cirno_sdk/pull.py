"""The idle pull (the seed's 定时拉取): sync on a timer when no push came for a while.

Pushes are the fast path and the offline sync at login the safety net; between the two,
a push lost in flight with nothing after it (the last message of a conversation, so no
later ``inbox_seq`` shows the gap) would wait for the next reconnect. The idle pull
bounds that wait: after ``interval`` seconds without a push or a sync, the client syncs.

:class:`IdlePull` is the sans-I/O decision, like :class:`~cirno_sdk.acks.AckBatcher`:

- every push and every finished sync (:meth:`IdlePull.activity`) moves the next pull to
  ``interval`` seconds later, scaled by a random factor in ``[1 - jitter, 1 + jitter]``
  so that clients connected together do not all pull together;
- :meth:`IdlePull.due` says when a pull should start; the caller starts it and calls
  :meth:`IdlePull.activity` when it finishes, so pulls never overlap;
- an ``interval`` of 0 disables the pull (:meth:`IdlePull.deadline` is always None).

A lost push is therefore late by at most ``interval * (1 + jitter)`` plus one sync while
the connection stays up. Time comes from an injected clock, randomness from an injected
source, so tests drive both.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class IdlePull:
    """Decides when a connected client syncs although no push asked for it."""

    def __init__(
        self,
        *,
        interval: float,
        jitter: float,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if interval < 0 or not 0 <= jitter < 1:
            raise ValueError("interval must be >= 0 and 0 <= jitter < 1")
        self._interval = interval
        self._jitter = jitter
        self._clock = clock
        self._rand = rand
        self._next: float | None = None
        self.activity()

    @property
    def enabled(self) -> bool:
        """Whether the pull runs at all (``interval`` > 0)."""
        return self._interval > 0

    def activity(self) -> None:
        """A push arrived or a sync finished: the next pull is one jittered interval away."""
        if not self.enabled:
            return
        factor = 1 + self._jitter * (2 * self._rand() - 1)
        self._next = self._clock() + self._interval * factor

    def deadline(self) -> float | None:
        """When the next pull is due (clock units), or None when disabled."""
        return self._next

    def due(self) -> bool:
        """Whether a pull should start now."""
        return self._next is not None and self._clock() >= self._next
