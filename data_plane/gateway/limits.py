"""Rate limits as token buckets: per connection, per account, per IP and per tenant.

A bucket holds up to ``burst`` tokens (default: one second's worth, at least one) and
refills continuously at ``rate`` tokens per second. Time comes from an injected clock,
so tests advance time instead of sleeping.

:class:`KeyedBuckets` keeps one bucket per key (an IP, a tenant, an account) in bounded
memory: a bucket that has refilled to its burst is the same as a new one, so it can be
forgotten without changing any answer; only when every remembered key is active and the
table is full are the oldest dropped (which can only let those keys through sooner).

:class:`CommandLimits` are the limits of one connection, resolved at login from the
gateway's defaults and the tenant's overrides (see :func:`resolve_limits`). A value of
0 means unlimited and is used only when set explicitly; a tenant's ``None`` means "the
gateway's default".
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

STRIKE_RATE = 5.0
"""429 answers a connection may earn per second, on average, before it is closed."""
STRIKE_BURST = 50.0
"""429 answers a connection may earn in a burst before it is closed (4008)."""


class TokenBucket:
    """Allows ``rate`` events per second on average, bursts of up to ``burst``."""

    __slots__ = ("_capacity", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(
        self, rate: float, clock: Callable[[], float], *, burst: float | None = None
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = max(1.0, rate if burst is None else burst)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Events per second."""
        return self._rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def allow(self) -> bool:
        """Take one token if there is one."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full(self) -> bool:
        """Whether the bucket has refilled to its burst (it is then like a new one)."""
        self._refill()
        return self._tokens >= self._capacity


class KeyedBuckets(Generic[K]):
    """One :class:`TokenBucket` per key, at most ``max_keys`` of them remembered."""

    __slots__ = ("_buckets", "_clock", "_max_keys")

    def __init__(self, clock: Callable[[], float], *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[K, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: K, rate: float, burst: float | None = None) -> bool:
        """Take one token of ``key``'s bucket (``rate`` ≤ 0: unlimited, always True).

        A changed ``rate`` starts the key over with a fresh bucket at the new rate.
        """
        if rate <= 0:
            return True
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            if len(self._buckets) >= self._max_keys:
                self._prune()
            bucket = self._buckets[key] = TokenBucket(rate, self._clock, burst=burst)
        return bucket.allow()

    def _prune(self) -> None:
        # Full buckets are forgotten losslessly. If that frees less than a tenth, the
        # oldest keys go too (insertion order), so pruning stays amortised O(1).
        self._buckets = {k: b for k, b in self._buckets.items() if not b.full()}
        excess = len(self._buckets) - self._max_keys * 9 // 10
        if excess > 0:
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]


@dataclass(frozen=True, slots=True)
class CommandLimits:
    """The rates one connection is held to (per second; 0 = unlimited)."""

    connection_rate: float
    """Commands of this connection, every command."""
    account_rate: float
    """Commands of all the account's connections on this gateway, together."""
    talk_rate: float
    """``chat.user.talk`` / ``chat.group.talk`` of this connection (the tenant's
    ``messages_per_second``)."""


def resolve(override: float | None, default: float) -> float:
    """The tenant's value when it set one (0 included), else the gateway's default."""
    return default if override is None else override


def resolve_limits(
    *,
    default_connection_rate: float,
    default_account_rate: float,
    connection_rate: float | None,
    account_rate: float | None,
    talk_rate: float,
) -> CommandLimits:
    """A connection's limits from the gateway defaults and the tenant's overrides."""
    return CommandLimits(
        connection_rate=resolve(connection_rate, default_connection_rate),
        account_rate=resolve(account_rate, default_account_rate),
        talk_rate=talk_rate,
    )
