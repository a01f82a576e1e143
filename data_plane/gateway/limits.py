"""Per-connection message rate limits (a tenant quota), as token buckets.

A bucket holds up to ``rate`` tokens (one second of burst, at least one) and refills
continuously at ``rate`` tokens per second. Time comes from an injected clock, so
tests advance time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """Allows ``rate`` events per second on average, bursts of up to one second's worth."""

    __slots__ = ("_capacity", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Events per second."""
        return self._rate

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
