"""Offline announcements for connections that vanished without a sign-out.

Theory of operation. A gateway that dies sends no sign-out for its channels; their
locations expire in Redis ``LOCATION_TTL_SECONDS`` after the gateway's last refresh,
and no logic node is told. So each logic node remembers the channels whose sign-in or
refresh it handled last (:meth:`ExpirySweep.seen`), ordered by when. A channel not seen
again for :data:`SWEEP_AFTER` seconds — longer than a location lives without a refresh
— has either lost its location (its gateway died) or moved to another logic node (the
cluster's membership changed): the sweep settles its account either way. Settling is
idempotent and atomic (:meth:`~data_plane.storage.sessions.presence.PresenceStore.settle_presence`),
so a moved channel whose location is alive changes nothing, and an account whose last
location expired is announced offline exactly once.

Bounds: one entry per channel this node handled the sign-in or refresh of, at most
``max_tracked`` (the oldest are forgotten beyond it; their accounts are then not swept).
An offline announcement after a gateway died comes ``SWEEP_AFTER`` to
``SWEEP_AFTER + interval`` seconds after its last refresh reached this node; if this
logic node dies too, nobody sweeps and the announcement waits for the account's next
login or logout.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import anyio

from data_plane.cluster.protocol import LOCATION_REFRESH_INTERVAL, LOCATION_TTL_SECONDS

SWEEP_AFTER = LOCATION_TTL_SECONDS + 10.0
"""Seconds without a refresh after which a channel's account is settled (a location
lives ``LOCATION_TTL_SECONDS`` after its last refresh; the rest is clock slack)."""

MAX_TRACKED = 1_000_000
"""Channels one logic node remembers for the sweep."""

Settle = Callable[[str, str], Awaitable[None]]
"""Settles (tenant, account): :meth:`~.presence.Presence.settle`."""


class ExpirySweep:
    """Channels by when this node last saw them; settles the accounts of stale ones."""

    def __init__(
        self,
        settle: Settle,
        *,
        after: float = SWEEP_AFTER,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settle = settle
        self._after = after
        self._max = max_tracked
        self._clock = clock
        # (tenant, channel) → (account, last seen), oldest first.
        self._seen: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, tenant: str, account: str, channel_id: str) -> None:
        """The channel signed in or refreshed through this node just now."""
        key = (tenant, channel_id)
        self._seen[key] = (account, self._clock())
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def gone(self, tenant: str, channel_id: str) -> None:
        """The channel signed out through this node (its sign-out settled it)."""
        self._seen.pop((tenant, channel_id), None)

    async def sweep(self) -> int:
        """Settle the accounts of channels unseen for ``after`` seconds and forget
        those channels; returns how many accounts were settled."""
        horizon = self._clock() - self._after
        stale: dict[tuple[str, str], None] = {}
        while self._seen:
            key, (account, last) = next(iter(self._seen.items()))
            if last > horizon:
                break
            del self._seen[key]
            stale[(key[0], account)] = None
        for tenant, account in stale:
            await self._settle(tenant, account)
        return len(stale)

    async def run(self, interval: float = LOCATION_REFRESH_INTERVAL) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            await anyio.sleep(interval)
            await self.sweep()
