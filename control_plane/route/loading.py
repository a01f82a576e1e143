"""Reading a route :class:`~control_plane.route.snapshot.Snapshot` from the database,
whole or incrementally.

:func:`refresh_snapshot` is what a reload runs (in a worker thread, see
``control_plane.route.cache``). The revision counters (``control_plane.models.revisions``)
are read first, so every row read afterwards is at least as new as they are. Gateways
are re-read whole when the gateways counter moved (a node appeared, came back or changed
shape anywhere); otherwise only those that heartbeated since the newest expiry seen
(minus :data:`REREAD_MARGIN`), plus, by id, known ones that look expired (another
process with a slower clock may have renewed them), and expired ones are dropped. The
directory (tenants, keys, regions, rules) is re-read only when its counter moved. When
nothing changed the previous snapshot is kept, with a new ``loaded_at``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

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
    RevisionScope,
    Tenant,
    TenantStatus,
    as_epoch,
    read_revisions,
)
from control_plane.route.snapshot import GatewayView, KeyView, Snapshot, TenantView, make_snapshot

REREAD_MARGIN = 2.0
"""Seconds of heartbeats re-read on each refresh (commit order and clock skew between
control-plane processes)."""

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


@dataclass(frozen=True, slots=True)
class LoadState:
    """What the last successful load read: where the next incremental refresh starts.

    Kept beside the snapshot it produced (both are replaced together)."""

    gateways: dict[str, GatewayView]
    newest_expiry: float
    revisions: dict[str, int]
    directory: dict[str, Any]


def refresh_snapshot(
    engine: Engine,
    now: float,
    generation: int,
    previous: Snapshot | None,
    state: LoadState | None,
) -> tuple[Snapshot, LoadState]:
    """A fresh snapshot of ``generation`` and its state: whole after an invalidation
    (``previous`` missing or of another generation), else incremental from ``state``
    (what ``previous`` was loaded from; see the module docstring).

    Raises whatever the database raises. Changes nothing but the database session it
    opens, so it may run in a worker thread.
    """
    if previous is None or previous.generation != generation:
        state = None
    with Session(engine) as session:
        # First: every row read after the counters is at least as new as they are.
        revisions = read_revisions(session)
        gateways, newest, gateways_changed = refresh_gateways(session, now, state, revisions)
        if state is None or _moved(state, revisions, RevisionScope.DIRECTORY):
            directory, directory_changed = load_directory(session, now), True
        else:
            directory, directory_changed = state.directory, False
    loaded = LoadState(gateways, newest, revisions, directory)
    unchanged = state is not None and not (gateways_changed or directory_changed)
    if previous is not None and unchanged:
        return dataclasses.replace(previous, loaded_at=now), loaded
    snapshot = make_snapshot(
        loaded_at=now, gateways=gateways.values(), generation=generation, **directory
    )
    return snapshot, loaded


def _moved(state: LoadState, revisions: dict[str, int], scope: RevisionScope) -> bool:
    return revisions.get(scope.value) != state.revisions.get(scope.value)


def refresh_gateways(
    session: Session, now: float, state: LoadState | None, revisions: dict[str, int]
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
