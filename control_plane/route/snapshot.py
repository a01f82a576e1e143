"""What a route answer is computed from: a frozen :class:`Snapshot` and its index.

A snapshot holds the routable gateways (not draining, with an address), regions,
grayscale rules and tenants' live keys, as read from the database at ``loaded_at``
(``control_plane.route.loading`` reads it, ``control_plane.route.cache`` decides when).
:func:`make_snapshot` indexes the gateways by region and pool, then zone, then load
step, so that choosing gateways (``control_plane.route.choice``) looks only at the
groups it needs. Expiry is not indexed: it is checked per request, on those groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
