"""Smart routing: client address → region → grayscale pool → the best few gateways.

Pure functions over a :class:`~control_plane.route.snapshot.Snapshot`;
``control_plane.route.service`` calls them per request. The algorithm, in order:

1. **Region**: the region naming the client's country, else the one naming its
   continent, else the default region (no GeoIP database, unknown or private address).
2. **Pool**: the grayscale decision's gateway pool; without one, the default pool
   (gateways whose pool is ``""`` or ``"stable"``).
3. **Candidates**: live (unexpired), non-draining gateways with an address, tried in
   this order until one set is non-empty: the region in the wanted pool; the region in the
   default pool; every region in the wanted pool; every region in the default pool;
   every live gateway. Anything past the first step is a *fallback*, and the answer says
   why: "no live gateway in pool canary" (of region X when the region is known).
4. **Zone**: the zones that have candidates are ranked per account by weighted
   rendezvous hashing (the region's zone weights; unlisted zones come after listed
   ones), so an account sticks to one zone and zones get shares proportional to their
   weights.
5. **Order**: by zone rank, then load (connections / capacity) in 10 % steps, ties
   broken by rendezvous hash of (gateway, account): while loads stay within a step the
   same user gets the same answer, and different users spread over equal gateways.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from control_plane.route.snapshot import (
    ANY_POOL_KEY,
    DEFAULT_POOL_KEY,
    DEFAULT_POOLS,
    GatewayView,
    Snapshot,
    ZoneIndex,
    zone_index,
)

DEFAULT_POOL_LABEL = "stable"
MAX_GATEWAYS = 3


def resolve_region(snapshot: Snapshot, country: str | None, continent: str | None) -> str | None:
    """Country match, then continent match, then the default region (None without one)."""
    if country is not None and country in snapshot.by_country:
        return snapshot.by_country[country]
    if continent is not None and continent in snapshot.by_continent:
        return snapshot.by_continent[continent]
    return snapshot.default_region


def _hash01(*parts: str) -> float:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)


def weighted_score(account: str, item: str, weight: int) -> float:
    """Weighted rendezvous score: the highest wins; a share of ``weight / total``."""
    return -weight / math.log(_hash01("zone", item, account))


@dataclass(frozen=True, slots=True)
class Choice:
    """The gateways chosen and how."""

    gateways: list[GatewayView]
    pool: str | None
    fallback: bool
    fallback_reason: str | None = None
    """Why the first choice did not serve (None when it did)."""


def choose_gateways(
    snapshot: Snapshot,
    region: str | None,
    pool: str | None,
    account: str,
    now: float,
    limit: int = MAX_GATEWAYS,
) -> Choice:
    """The best ``limit`` gateways for ``account`` (see the module docstring).

    The snapshot indexes routable gateways (not draining, with an address) by region,
    pool, zone and load step; expiry is checked here, on the groups actually looked at.
    """
    wanted = None if pool is None or pool in DEFAULT_POOLS else pool
    keys = [wanted, DEFAULT_POOL_KEY] if wanted is not None else [DEFAULT_POOL_KEY]
    scopes: list[str | None] = [region, None] if region is not None else [None]
    attempts = [(scope, key) for scope in scopes for key in keys] + [(None, ANY_POOL_KEY)]
    weights = snapshot.zone_weights.get(region, {}) if region is not None else {}
    for index, (scope, key) in enumerate(attempts):
        zones = snapshot.index.get((scope, key))
        if not zones:
            continue
        ordered = _order(zones, weights, account, now, limit)
        if ordered:
            served = None if key == ANY_POOL_KEY else (key or DEFAULT_POOL_LABEL)
            reason = f"no live gateway in {_where(*attempts[0])}" if index else None
            return Choice(ordered, served, fallback=index > 0, fallback_reason=reason)
    return Choice([], None, fallback=True, fallback_reason="no live gateway")


def _where(scope: str | None, key: str) -> str:
    """A candidate set in words: "pool canary", "pool stable of region eu"."""
    pool = "any pool" if key == ANY_POOL_KEY else f"pool {key or DEFAULT_POOL_LABEL}"
    return pool if scope is None else f"{pool} of region {scope}"


def _order(
    zones: ZoneIndex, weights: dict[str, int], account: str, now: float, limit: int | None
) -> list[GatewayView]:
    """Unexpired gateways by zone rank, load step, then a per-account rendezvous hash.

    Only the groups needed to fill ``limit`` are filtered and hashed.
    """
    ranked = sorted(
        zones,
        key=lambda zone: (
            zone not in weights,
            -weighted_score(account, zone, weights.get(zone, 1)),
            zone,
        ),
    )
    ordered: list[GatewayView] = []
    for zone in ranked:
        for group in zones[zone]:
            live = [g for g in group if g.expires_at > now]
            if len(live) > 1:
                live.sort(key=lambda g: (-_hash01("gw", g.id, account), g.id))
            ordered.extend(live)
            if limit is not None and len(ordered) >= limit:
                return ordered[:limit]
    return ordered


def order_gateways(
    candidates: Iterable[GatewayView],
    weights: dict[str, int],
    account: str,
    limit: int | None = None,
) -> list[GatewayView]:
    """``candidates`` (all considered live) in the order route answers use."""
    return _order(zone_index(candidates), weights, account, -math.inf, limit)
