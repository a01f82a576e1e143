"""An in-memory snapshot of what ``/v1/route`` needs, reloaded at most every ``ttl``.

Route answers are read far more often than the registry changes, so the route handler
never queries the database itself: it reads a :class:`Snapshot` (live gateways,
regions, grayscale rules, tenants' live keys) that :class:`SnapshotCache` reloads in a
worker thread once it is older than ``settings.cache_ttl`` (1 s by default). Writes
made through this process (tenants, keys, regions, rules, a node appearing or changing
its addresses, pool or draining flag) invalidate it at once; load figures of known
nodes and changes made by other control-plane processes show up within the TTL.
Expiry is checked at request time too, so a snapshot never serves a node or a key past
its ``expires_at``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from control_plane.keys import live_keys_by_tenant
from control_plane.models import (
    GrayscaleRuleRow,
    Node,
    NodeRole,
    Region,
    RegionContinent,
    RegionCountry,
    RegionZone,
    Tenant,
    TenantKey,
    TenantStatus,
    as_epoch,
)
from data_plane.cluster.grayscale import GrayscaleRule


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


def load_gateways(session: Session, since: float) -> list[GatewayView]:
    """Gateways whose expiry is after ``since`` (draining ones included).

    Read as plain rows, not ORM objects: this runs every second, and a thousand model
    instances would cost the event loop tens of milliseconds of GIL.
    """
    nodes = Node.__table__.c  # type: ignore[attr-defined]
    rows = session.connection().execute(
        sa.select(*(nodes[name] for name in _GATEWAY_COLUMNS)).where(
            nodes.role == NodeRole.GATEWAY.value, nodes.expires_at > since
        )
    )
    return [GatewayView(**row._mapping) for row in rows]


def directory_fingerprint(session: Session) -> tuple[Any, ...]:
    """Row counts and newest change times of tenants, keys, regions and rules.

    Every write to them changes a count or bumps an ``updated_at`` / ``created_at``
    (region children bump their region), so an equal fingerprint means nothing to
    reload. Key expiry is not a write: it is checked per request.
    """
    columns = []
    for table, stamp in (
        (Tenant.__table__, "updated_at"),  # type: ignore[attr-defined]
        (TenantKey.__table__, "created_at"),  # type: ignore[attr-defined]
        (Region.__table__, "updated_at"),  # type: ignore[attr-defined]
        (GrayscaleRuleRow.__table__, "updated_at"),  # type: ignore[attr-defined]
    ):
        columns.append(sa.select(sa.func.count()).select_from(table).scalar_subquery())
        columns.append(sa.select(sa.func.max(table.c[stamp])).scalar_subquery())
    return tuple(session.connection().execute(sa.select(*columns)).one())


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


class SnapshotCache:
    """The app's current :class:`Snapshot`, reloaded when stale or invalidated."""

    def __init__(self, engine: Engine, clock: Callable[[], float], ttl: float) -> None:
        self._engine = engine
        self._clock = clock
        self._ttl = ttl
        self._snapshot: Snapshot | None = None
        self._generation = 0
        self._lock = anyio.Lock()
        # Incremental refresh state (only touched by _load, under the lock).
        self._gateways: dict[str, GatewayView] = {}
        self._newest_expiry = 0.0
        self._fingerprint: tuple[Any, ...] | None = None
        self._directory: dict[str, Any] = {}

    def invalidate(self) -> None:
        """Forget the snapshot: the next read reloads (safe from any thread)."""
        self._generation += 1

    def _fresh(self, snapshot: Snapshot | None, now: float) -> bool:
        return (
            snapshot is not None
            and snapshot.generation == self._generation
            and now - snapshot.loaded_at < self._ttl
            and now >= snapshot.loaded_at
        )

    async def get(self) -> Snapshot:
        """The current snapshot, reloading it in a worker thread when stale.

        While one request refreshes a snapshot that is merely old (not invalidated),
        the others keep using it instead of queueing behind the refresh.
        """
        snapshot = self._snapshot
        if snapshot is not None and self._fresh(snapshot, self._clock()):
            return snapshot
        if snapshot is not None and self._lock.locked() and snapshot.generation == self._generation:
            return snapshot
        async with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and self._fresh(snapshot, self._clock()):
                return snapshot
            snapshot = await anyio.to_thread.run_sync(self._load)
            self._snapshot = snapshot
            return snapshot

    async def reload(self, min_age: float = MIN_RELOAD_AGE) -> Snapshot:
        """Reload now, unless the snapshot is younger than ``min_age`` seconds.

        For tokens naming a tenant or key the snapshot does not know (created a moment
        ago, maybe by another process); ``min_age`` keeps a stream of tokens with made-up
        tenants from turning every request into a database read.
        """
        snapshot = self._snapshot
        if snapshot is not None and 0 <= self._clock() - snapshot.loaded_at < min_age:
            return await self.get()
        self.invalidate()
        return await self.get()

    def _load(self) -> Snapshot:
        """A fresh snapshot: whole after an invalidation, else incremental.

        An incremental refresh reads only gateways that heartbeated since the newest
        expiry seen (minus a margin), drops expired ones, and re-reads the directory
        (tenants, keys, regions, rules) only when its fingerprint changed; when nothing
        changed the previous snapshot is kept (with a new ``loaded_at``).
        """
        generation = self._generation
        now = self._clock()
        previous = self._snapshot
        whole = previous is None or previous.generation != generation
        with Session(self._engine) as session:
            if whole:
                self._gateways = {}
                self._newest_expiry = 0.0
            # Expired rows are of no use; recent ones may have committed out of order.
            since = max(now, self._newest_expiry - REREAD_MARGIN)
            changed = False
            for gateway in load_gateways(session, since):
                if self._gateways.get(gateway.id) != gateway:
                    self._gateways[gateway.id] = gateway
                    changed = True
                self._newest_expiry = max(self._newest_expiry, gateway.expires_at)
            expired = [gid for gid, g in self._gateways.items() if g.expires_at <= now]
            for gid in expired:
                del self._gateways[gid]
            fingerprint = directory_fingerprint(session)
            if whole or fingerprint != self._fingerprint:
                self._directory = load_directory(session, now)
                self._fingerprint = fingerprint
                changed = True
        if previous is not None and not whole and not changed and not expired:
            return dataclasses.replace(previous, loaded_at=now)
        return make_snapshot(
            loaded_at=now,
            gateways=self._gateways.values(),
            generation=generation,
            **self._directory,
        )
