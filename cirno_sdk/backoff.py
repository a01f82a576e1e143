"""Exponential reconnect back-off with jitter.

The n-th delay (n from 0) is ``min(maximum, initial * multiplier**n)`` with up to a
``jitter`` fraction taken off at random, so a gateway restart does not bring every
client back in the same instant. :meth:`Backoff.reset` after a successful login.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for successive reconnect attempts. ``rng`` returns floats in [0, 1)."""

    def __init__(
        self,
        *,
        initial: float = 0.5,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if initial < 0 or maximum < initial or multiplier < 1 or not 0 <= jitter <= 1:
            raise ValueError("need 0 <= initial <= maximum, multiplier >= 1, 0 <= jitter <= 1")
        self._initial = initial
        self._maximum = maximum
        self._multiplier = multiplier
        self._jitter = jitter
        self._rng = rng
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        base = min(self._maximum, self._initial * self._multiplier**self.attempts)
        self.attempts += 1
        return base * (1.0 - self._jitter * self._rng())

    def reset(self) -> None:
        """Start over from ``initial`` (after a successful login)."""
        self.attempts = 0
