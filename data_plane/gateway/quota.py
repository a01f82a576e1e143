"""A tenant's ``max_connections``, counted across every live gateway.

Theory of operation
-------------------
Each gateway counts its own connections per tenant exactly: a login takes a slot before
it is forwarded to a logic node (so concurrent logins on one gateway cannot overshoot)
and the slot is given back when the connection ends. Gateways hold no database, so what
the *other* gateways hold comes from the control plane: every heartbeat reports this
gateway's counts (:meth:`ConnectionQuota.report`) and its answer carries, per tenant with
a quota, the sum of what the other live gateways reported in their last heartbeats
(:meth:`ConnectionQuota.learn`). A login is admitted only while

    own connections + the others' last known count < max_connections.

The bound that gives: admissions on one gateway are exact; the others' count lags by up
to two heartbeat intervals (theirs, to reach the control plane, and ours, to come back),
so logins arriving at several gateways within that window can together overshoot the
quota by what the other gateways admitted in it, and never past ``N × max_connections``
for N gateways (each gateway alone stays below the quota). Closed connections free their
slot at once on their own gateway and cluster-wide after the same two intervals. While
the control plane is unreachable the last known counts stay in force (they are never
reset to zero by a failure).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping

from data_plane.cluster.registry import MAX_TENANT_COUNTS


class ConnectionQuota:
    """Per-tenant connection counts of this gateway and of the other live gateways."""

    __slots__ = ("_elsewhere", "_max_reported", "_own")

    def __init__(self, *, max_reported: int = MAX_TENANT_COUNTS) -> None:
        self._own: Counter[str] = Counter()
        self._elsewhere: dict[str, int] = {}
        self._max_reported = max_reported

    def admits(self, tenant: str, limit: int) -> bool:
        """Whether one more connection of ``tenant`` fits ``limit`` (0 means unlimited)
        cluster-wide, as far as this gateway knows. Take the slot with :meth:`acquire`
        before the next suspension point, or another login may take it meanwhile."""
        return limit <= 0 or self._own[tenant] + self._elsewhere.get(tenant, 0) < limit

    def acquire(self, tenant: str) -> None:
        """Count one more connection of ``tenant`` on this gateway."""
        self._own[tenant] += 1

    def release(self, tenant: str) -> None:
        """Count one connection of ``tenant`` less on this gateway (once per acquire)."""
        left = self._own[tenant] - 1
        if left > 0:
            self._own[tenant] = left
        else:
            del self._own[tenant]

    def own(self, tenant: str) -> int:
        """Connections of ``tenant`` on this gateway (logins in progress included)."""
        return self._own[tenant]

    def elsewhere(self, tenant: str) -> int:
        """Connections of ``tenant`` on the other live gateways, as last heard."""
        return self._elsewhere.get(tenant, 0)

    def report(self, limit_of: Callable[[str], int]) -> dict[str, int]:
        """What a heartbeat reports: own counts of the tenants whose quota (``limit_of``,
        0 = unlimited) is set, at most ``max_reported`` of them, the largest counts.

        Tenants without a quota are left out (nobody needs their count), so a gateway
        serving thousands of tenants sends only the few that are limited. Past the cap
        the smallest counts are dropped, which keeps the possible overshoot smallest.
        """
        limited = [(tenant, n) for tenant, n in self._own.items() if limit_of(tenant) > 0]
        if len(limited) > self._max_reported:
            limited = heapq.nlargest(self._max_reported, limited, key=lambda item: item[1])
        return dict(limited)

    def learn(self, elsewhere: Mapping[str, int]) -> None:
        """Take the control plane's answer: the other live gateways' counts per tenant
        (a tenant it does not name holds no connection elsewhere)."""
        self._elsewhere = dict(elsewhere)
