"""The app's in-memory route snapshot, reloaded at most every ``ttl``.

Route answers are read far more often than the registry changes, so the route handler
never queries the database itself: it reads a :class:`Snapshot` (live gateways,
regions, grayscale rules, tenants' live keys) that :class:`SnapshotCache` reloads in a
worker thread once it is older than ``settings.cache_ttl`` (1 s by default). Writes
made through this process (tenants, keys, regions, rules, a node appearing or changing
its addresses, pool or draining flag) invalidate it at once. Writes made by other
control-plane processes are seen at the first reload after they commit, whatever the
clocks say: each such write also bumps a revision counter
(``control_plane.models.revisions``) that reloads compare (how a reload reads:
``control_plane.route.loading``). Load figures of known nodes show up within the TTL.
Expiry is checked at request time too, so a snapshot never serves a node or a key past
its ``expires_at``.

The control plane is never on the per-message path, and ``/v1/route`` keeps answering
while the database is unreachable: a failed reload keeps the last good snapshot (logged,
counted in ``cirno_control_route_snapshot_reload_failures_total``, its age in
``cirno_control_route_snapshot_age_seconds``) and is retried once per TTL; only a
process that never loaded a snapshot answers 503.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine

from control_plane.errors import ControlPlaneError
from control_plane.route.loading import LoadState, refresh_snapshot
from control_plane.route.snapshot import Snapshot

log = logging.getLogger(__name__)

MIN_RELOAD_AGE = 0.1
UNAVAILABLE = "no routing data: the control plane cannot read its database; retry later"
"""The reason of the 503 answered while no snapshot could be loaded at all."""


class SnapshotUnavailable(ControlPlaneError):
    """No snapshot has been loaded yet and the database cannot be read now."""


class SnapshotCache:
    """The app's current :class:`Snapshot`, reloaded when stale or invalidated.

    Guarantees: a snapshot is served for at most ``ttl`` seconds after it was loaded,
    unless reloading fails; a write through this process (:meth:`invalidate`) is seen by
    the next read; a write through another process is seen by the first reload after it
    commits (revision counters, ``control_plane.models.revisions``), i.e. within ``ttl``.
    When a reload fails (the database is unreachable), the last good snapshot keeps
    being served, the failure is logged and counted, and the reload is retried once per
    ``ttl``; request-time expiry checks still drop gateways and keys past their expiry.
    Only with no snapshot at all does :meth:`get` raise :class:`SnapshotUnavailable`.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float],
        ttl: float,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ttl = ttl
        self._snapshot: Snapshot | None = None
        self._generation = 0
        self._lock = anyio.Lock()
        self._state: LoadState | None = None
        """What :attr:`_snapshot` was loaded from (both replaced together)."""
        self._failed_at: float | None = None
        """When the last reload failed (None: it succeeded); no retry until ``+ ttl``."""
        self.consecutive_failures = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._failures = Counter(
            "cirno_control_route_snapshot_reload_failures",
            "Route snapshot reloads that failed (the last good snapshot is served meanwhile).",
            registry=registry,
        )
        Gauge(
            "cirno_control_route_snapshot_age_seconds",
            "Seconds since the route snapshot was last loaded (NaN: never).",
            registry=registry,
        ).set_function(self.age)
        Gauge(
            "cirno_control_route_snapshot_consecutive_failures",
            "Route snapshot reloads that failed since the last one that succeeded.",
            registry=registry,
        ).set_function(lambda: self.consecutive_failures)

    def age(self) -> float:
        """Seconds since the current snapshot was loaded (NaN when there is none)."""
        snapshot = self._snapshot
        return math.nan if snapshot is None else self._clock() - snapshot.loaded_at

    def invalidate(self) -> None:
        """Forget the snapshot: the next read reloads (safe from any thread).

        Called after a write through this process, which shows the database answers
        again: a back-off after a failed reload ends too.
        """
        self._generation += 1
        self._failed_at = None

    def _fresh(self, snapshot: Snapshot, now: float) -> bool:
        return (
            snapshot.generation == self._generation
            and now - snapshot.loaded_at < self._ttl
            and now >= snapshot.loaded_at
        )

    def _backing_off(self, now: float) -> bool:
        failed = self._failed_at
        return failed is not None and failed <= now < failed + self._ttl

    async def get(self) -> Snapshot:
        """The current snapshot, reloading it in a worker thread when stale.

        While one request refreshes a snapshot that is merely old (not invalidated), or
        while the database is failing, the others keep using it instead of queueing
        behind the refresh. :class:`SnapshotUnavailable` when there is no snapshot and
        the database cannot be read (tried at most once per ``ttl``).
        """
        snapshot = self._snapshot
        if snapshot is not None and self._fresh(snapshot, self._clock()):
            return snapshot
        if (
            snapshot is not None
            and self._lock.locked()
            and (snapshot.generation == self._generation or self._failed_at is not None)
        ):
            return snapshot
        async with self._lock:
            snapshot = self._snapshot
            now = self._clock()
            if snapshot is not None and self._fresh(snapshot, now):
                return snapshot
            if self._backing_off(now):
                if snapshot is None:
                    raise SnapshotUnavailable(UNAVAILABLE)
                return snapshot
            try:
                loaded, state = await anyio.to_thread.run_sync(self._load)
            except Exception as exc:  # whatever broke, the last good snapshot is better
                return self._reload_failed(now, snapshot, exc)
            if self._failed_at is not None:
                log.warning(
                    "route snapshot reloaded after %d failed attempts", self.consecutive_failures
                )
            self._failed_at = None
            self.consecutive_failures = 0
            # Both together, in this task (a cancelled wait for the thread sets neither).
            self._state = state
            self._snapshot = loaded
            return loaded

    def _reload_failed(self, now: float, snapshot: Snapshot | None, exc: Exception) -> Snapshot:
        self._failed_at = now
        self.consecutive_failures += 1
        self._failures.inc()
        # The traceback once per outage; afterwards one line per attempt (one per ttl).
        first = self.consecutive_failures == 1
        if snapshot is None:
            log.error(
                "route snapshot cannot be loaded (attempt %d), /v1/route answers 503: %s",
                self.consecutive_failures,
                exc,
                exc_info=first,
            )
            raise SnapshotUnavailable(UNAVAILABLE) from exc
        log.warning(
            "route snapshot reload failed (attempt %d), serving the one loaded %.1f s ago: %s",
            self.consecutive_failures,
            now - snapshot.loaded_at,
            exc,
            exc_info=first,
        )
        return snapshot

    async def reload(self, min_age: float = MIN_RELOAD_AGE) -> Snapshot:
        """Reload now, unless the snapshot is younger than ``min_age`` seconds.

        For tokens naming a tenant or key the snapshot does not know (created a moment
        ago, maybe by another process); ``min_age`` keeps a stream of tokens with made-up
        tenants from turning every request into a database read, and a back-off after a
        failed reload is kept (unlike :meth:`invalidate`).
        """
        snapshot = self._snapshot
        if snapshot is not None and 0 <= self._clock() - snapshot.loaded_at < min_age:
            return await self.get()
        self._generation += 1
        return await self.get()

    def _load(self) -> tuple[Snapshot, LoadState]:
        """A fresh snapshot and its state (``refresh_snapshot``): whole after an
        invalidation, else incremental. Runs in a worker thread and changes nothing
        here: :meth:`get` stores the result, in its own task."""
        generation = self._generation
        now = self._clock()
        return refresh_snapshot(self._engine, now, generation, self._snapshot, self._state)
