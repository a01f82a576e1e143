"""An in-memory snapshot of what ``/v1/route`` needs, reloaded at most every ``ttl``.

Route answers are read far more often than the registry changes, so the route handler
never queries the database itself: it reads a :class:`Snapshot` (live gateways,
regions, grayscale rules, tenants' live keys) that :class:`SnapshotCache` reloads in a
worker thread once it is older than ``settings.cache_ttl`` (1 s by default). Writes
made through this process (tenants, keys, regions, rules, a node appearing or changing
its addresses, pool or draining flag) invalidate it at once. Writes made by other
control-plane processes are seen at the first reload after they commit, whatever the
clocks say: each such write also bumps a revision counter
(``control_plane.models.revisions``) that reloads compare. Load figures of known nodes
show up within the TTL. Expiry is checked at request time too, so a snapshot never
serves a node or a key past its ``expires_at``.

The control plane is never on the per-message path, and ``/v1/route`` keeps answering
while the database is unreachable: a failed reload keeps the last good snapshot (logged,
counted in ``cirno_control_route_snapshot_reload_failures_total``, its age in
``cirno_control_route_snapshot_age_seconds``) and is retried once per TTL; only a
process that never loaded a snapshot answers 503.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from control_plane.errors import ControlPlaneError
from control_plane.keys import live_keys_by_tenant
from control_plane.models import (
    GrayscaleRuleRow,
    Node,
    NodeRole,
    Region,
    RegionContinent,
    RegionCountry,
    RegionZone,
    RevisionScope,
    Tenant,
    TenantStatus,
    as_epoch,
    read_revisions,
)
from data_plane.cluster.grayscale import GrayscaleRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayView:
    """A live gateway as the router sees it."""

    id: str
    zone: str
    region: str
    pool: str
    ws_url: str | None
    tcp_addr: str | None
    connections: int
    capacity: int
    draining: bool
    expires_at: float


@dataclass(frozen=True, slots=True)
class KeyView:
    """A live signing key and when it stops verifying (None: never)."""

    secret: str
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class TenantView:
    """A tenant as token verification sees it."""

    id: str
    active: bool
    keys: dict[str, KeyView]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a route answer is computed from."""

    loaded_at: float
    gateways: tuple[GatewayView, ...] = ()
    """Routable gateways (not draining, with an address), by id; expiry is per request."""
    index: dict[tuple[str | None, str], ZoneIndex] = field(default_factory=dict)
    """``(region or None for all, pool key)`` → zones → gateways by load step."""
    zone_weights: dict[str, dict[str, int]] = field(default_factory=dict)
    by_country: dict[str, str] = field(default_factory=dict)
    by_continent: dict[str, str] = field(default_factory=dict)
    default_region: str | None = None
    rules: tuple[GrayscaleRule, ...] = ()
    tenants: dict[str, TenantView] = field(default_factory=dict)
    generation: int = 0


DEFAULT_POOLS = frozenset({"", "stable"})
"""Pool labels of the default pool."""
DEFAULT_POOL_KEY = ""
ANY_POOL_KEY = "\x00any"
LOAD_STEPS = 10

ZoneIndex = dict[str, tuple[tuple[GatewayView, ...], ...]]
"""Zone → gateways grouped by load step, lightest group first (no empty group)."""


def pool_key(pool: str) -> str:
    """The index key of a gateway pool label (the default pool has one key)."""
    return DEFAULT_POOL_KEY if pool in DEFAULT_POOLS else pool


def load_step(gateway: GatewayView) -> int:
    """Load in 10 % steps (0 … 10; over capacity counts as full)."""
    return min(LOAD_STEPS, gateway.connections * LOAD_STEPS // max(gateway.capacity, 1))


def zone_index(gateways: Iterable[GatewayView]) -> ZoneIndex:
    """``gateways`` by zone, then by load step (ascending)."""
    zones: dict[str, dict[int, list[GatewayView]]] = {}
    for gateway in gateways:
        zones.setdefault(gateway.zone, {}).setdefault(load_step(gateway), []).append(gateway)
    return {
        zone: tuple(tuple(steps[step]) for step in sorted(steps)) for zone, steps in zones.items()
    }


def make_snapshot(*, loaded_at: float, gateways: Iterable[GatewayView], **fields: Any) -> Snapshot:
    """A snapshot of the routable ``gateways`` (not draining, with an address), indexed
    by region and pool; ``fields`` are the other :class:`Snapshot` fields."""
    routable = sorted(
        (g for g in gateways if not g.draining and (g.ws_url or g.tcp_addr)), key=lambda g: g.id
    )
    scoped: dict[tuple[str | None, str], list[GatewayView]] = {}
    for gateway in routable:
        key = pool_key(gateway.pool)
        for scope in (gateway.region, None):
            scoped.setdefault((scope, key), []).append(gateway)
            scoped.setdefault((scope, ANY_POOL_KEY), []).append(gateway)
    return Snapshot(
        loaded_at=loaded_at,
        gateways=tuple(routable),
        index={key: zone_index(items) for key, items in scoped.items()},
        **fields,
    )


_GATEWAY_COLUMNS = (
    "id",
    "zone",
    "region",
    "pool",
    "ws_url",
    "tcp_addr",
    "connections",
    "capacity",
    "draining",
    "expires_at",
)


def load_gateways(session: Session, since: float, ids: Collection[str] = ()) -> list[GatewayView]:
    """Gateways whose expiry is after ``since`` (draining ones included); with ``ids``,
    only those.

    Read as plain rows, not ORM objects: this runs every second, and a thousand model
    instances would cost the event loop tens of milliseconds of GIL.
    """
    nodes = Node.__table__.c  # type: ignore[attr-defined]
    query = sa.select(*(nodes[name] for name in _GATEWAY_COLUMNS)).where(
        nodes.role == NodeRole.GATEWAY.value, nodes.expires_at > since
    )
    if ids:
        query = query.where(nodes.id.in_(list(ids)))
    rows = session.connection().execute(query)
    return [GatewayView(**row._mapping) for row in rows]


def load_directory(session: Session, now: float) -> dict[str, Any]:
    """Regions, grayscale rules and tenants' live keys, as :class:`Snapshot` fields."""
    weights: dict[str, dict[str, int]] = {}
    for zone in session.exec(select(RegionZone)).all():
        weights.setdefault(zone.region_id, {})[zone.zone] = zone.weight
    regions = session.exec(select(Region)).all()
    defaults = sorted(r.id for r in regions if r.is_default)
    for region in regions:
        weights.setdefault(region.id, {})
    keys = live_keys_by_tenant(session, now)
    tenants = {
        t.id: TenantView(
            id=t.id,
            active=t.status == TenantStatus.ACTIVE,
            keys={
                k.kid: KeyView(k.secret, None if k.expires_at is None else as_epoch(k.expires_at))
                for k in keys.get(t.id, [])
            },
        )
        for t in session.exec(select(Tenant)).all()
    }
    rules = tuple(
        row.as_rule()
        for row in session.exec(select(GrayscaleRuleRow).order_by(col(GrayscaleRuleRow.priority)))
    )
    return {
        "zone_weights": weights,
        "by_country": {c.country: c.region_id for c in session.exec(select(RegionCountry))},
        "by_continent": {c.continent: c.region_id for c in session.exec(select(RegionContinent))},
        "default_region": defaults[0] if defaults else None,
        "rules": rules,
        "tenants": tenants,
    }


def load_snapshot(session: Session, now: float, generation: int = 0) -> Snapshot:
    """Read a whole snapshot from the database (a handful of queries)."""
    return make_snapshot(
        loaded_at=now,
        gateways=load_gateways(session, now),
        generation=generation,
        **load_directory(session, now),
    )


MIN_RELOAD_AGE = 0.1
REREAD_MARGIN = 2.0
"""Seconds of heartbeats re-read on each refresh (commit order and clock skew between
control-plane processes)."""
UNAVAILABLE = "no routing data: the control plane cannot read its database; retry later"
"""The reason of the 503 answered while no snapshot could be loaded at all."""


class SnapshotUnavailable(ControlPlaneError):
    """No snapshot has been loaded yet and the database cannot be read now."""


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What the last successful load read: where the next incremental refresh starts."""

    gateways: dict[str, GatewayView]
    newest_expiry: float
    revisions: dict[str, int]
    directory: dict[str, Any]


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
        self._state: _Loaded | None = None
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

    def _load(self) -> tuple[Snapshot, _Loaded]:
        """A fresh snapshot and its state: whole after an invalidation, else incremental.

        The revision counters are read first. Gateways are re-read whole when the
        gateways counter moved (a node appeared, came back or changed shape anywhere);
        otherwise only those that heartbeated since the newest expiry seen (minus a
        margin), plus, by id, known ones that look expired (another process with a
        slower clock may have renewed them), and expired ones are dropped. The directory
        (tenants, keys, regions, rules) is re-read only when its counter moved. When
        nothing changed the previous snapshot is kept (with a new ``loaded_at``). Raises
        whatever the database raises. Changes nothing itself: runs in a worker thread.
        """
        generation = self._generation
        now = self._clock()
        previous = self._snapshot
        state = self._state
        if previous is None or previous.generation != generation:
            state = None
        with Session(self._engine) as session:
            # First: every row read after the counters is at least as new as they are.
            revisions = read_revisions(session)
            gateways, newest, gateways_changed = refresh_gateways(session, now, state, revisions)
            if state is None or _moved(state, revisions, RevisionScope.DIRECTORY):
                directory, directory_changed = load_directory(session, now), True
            else:
                directory, directory_changed = state.directory, False
        loaded = _Loaded(gateways, newest, revisions, directory)
        unchanged = state is not None and not (gateways_changed or directory_changed)
        if previous is not None and unchanged:
            return dataclasses.replace(previous, loaded_at=now), loaded
        snapshot = make_snapshot(
            loaded_at=now, gateways=gateways.values(), generation=generation, **directory
        )
        return snapshot, loaded


def _moved(state: _Loaded, revisions: dict[str, int], scope: RevisionScope) -> bool:
    return revisions.get(scope.value) != state.revisions.get(scope.value)


def refresh_gateways(
    session: Session, now: float, state: _Loaded | None, revisions: dict[str, int]
) -> tuple[dict[str, GatewayView], float, bool]:
    """The unexpired gateways by id, the newest expiry among them, and whether any
    changed since ``state`` (None: read them all)."""
    if state is None or _moved(state, revisions, RevisionScope.GATEWAYS):
        gateways = {g.id: g for g in load_gateways(session, now)}
        return gateways, max((g.expires_at for g in gateways.values()), default=0.0), True
    gateways = dict(state.gateways)
    newest = state.newest_expiry
    changed = False
    # Expired rows are of no use; recent ones may have committed out of order.
    for gateway in load_gateways(session, max(now, newest - REREAD_MARGIN)):
        if gateways.get(gateway.id) != gateway:
            gateways[gateway.id] = gateway
            changed = True
        newest = max(newest, gateway.expires_at)
    expiring = [gid for gid, g in gateways.items() if g.expires_at <= now]
    if expiring:
        # A process whose clock is behind by more than the margin writes expiries older
        # than the re-read window: look at these rows themselves before dropping them.
        renewed = {g.id: g for g in load_gateways(session, now, ids=expiring)}
        for gid in expiring:
            if gid in renewed:
                gateways[gid] = renewed[gid]
            else:
                del gateways[gid]
        changed = True
    return gateways, newest, changed
