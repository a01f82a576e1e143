"""Smart routing: client address → region → grayscale pool → the best few gateways.

Pure functions over a :class:`~control_plane.snapshot.Snapshot`; ``routes/route.py``
wires them to HTTP. The algorithm, in order:

1. **Region**: the region naming the client's country, else the one naming its
   continent, else the default region (no GeoIP database, unknown or private address).
2. **Pool**: the grayscale decision's gateway pool; without one, the default pool
   (gateways whose pool is ``""`` or ``"stable"``).
3. **Candidates**: live (unexpired), non-draining gateways with an address, tried in this
   order until one set is non-empty: the region in the wanted pool; the region in the
   default pool; every region in the wanted pool; every region in the default pool;
   every live gateway. Anything past the first step is a *fallback*.
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
import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from control_plane.settings import Network
from control_plane.snapshot import GatewayView, Snapshot

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_POOLS = frozenset({"", "stable"})
DEFAULT_POOL_LABEL = "stable"
MAX_GATEWAYS = 3
LOAD_STEPS = 10
_ANY_POOL = "\x00any"


class BadAddress(ValueError):
    """An address (``?ip=`` or a trusted proxy's ``X-Forwarded-For``) is unparsable."""


# --- client address ---------------------------------------------------------------------


def parse_ip(text: str) -> IPAddress:
    """An IPv4/IPv6 address (IPv4-mapped IPv6 becomes IPv4); BadAddress otherwise."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise BadAddress(f"not an IP address: {text[:64]!r}") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_hop(hop: str) -> IPAddress:
    text = hop.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    return parse_ip(text)


def is_trusted(address: IPAddress, trusted: Sequence[Network]) -> bool:
    """Whether ``address`` is one of the trusted proxies."""
    return any(address.version == net.version and address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> IPAddress | None:
    """The client's address: the socket peer, or, when the peer is a trusted proxy, the
    rightmost ``X-Forwarded-For`` hop that is not a trusted proxy (the leftmost when all
    are). ``X-Forwarded-For`` from any other peer is ignored (it is trivially spoofed).

    Raises :class:`BadAddress` when a trusted proxy sends an unparsable hop.
    """
    try:
        address = parse_ip(peer) if peer else None
    except BadAddress:
        return None  # not an IP peer (a Unix socket, a test client): no location
    if address is None or not forwarded_for or not is_trusted(address, trusted):
        return address
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    if not hops:
        return address
    parsed = [_parse_hop(hop) for hop in hops]
    for hop in reversed(parsed):
        if not is_trusted(hop, trusted):
            return hop
    return parsed[0]


# --- region and gateways ----------------------------------------------------------------


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


def _in_pool(gateway: GatewayView, pool: str | None) -> bool:
    if pool == _ANY_POOL:
        return True
    if pool is None:
        return gateway.pool in DEFAULT_POOLS
    return gateway.pool == pool


def load_step(gateway: GatewayView) -> int:
    """Load in 10 % steps (0 … 10; over capacity counts as full)."""
    return min(LOAD_STEPS, gateway.connections * LOAD_STEPS // max(gateway.capacity, 1))


@dataclass(frozen=True, slots=True)
class Choice:
    """The gateways chosen and how."""

    gateways: list[GatewayView]
    pool: str | None
    fallback: bool


def choose_gateways(
    snapshot: Snapshot,
    region: str | None,
    pool: str | None,
    account: str,
    now: float,
    limit: int = MAX_GATEWAYS,
) -> Choice:
    """The best ``limit`` gateways for ``account`` (see the module docstring)."""
    live = [
        g
        for g in snapshot.gateways
        if g.expires_at > now and not g.draining and (g.ws_url or g.tcp_addr)
    ]
    wanted = None if pool is None or pool in DEFAULT_POOLS else pool
    pools: list[str | None] = [wanted, None] if wanted is not None else [None]
    in_region = [g for g in live if g.region == region] if region is not None else []
    attempts = [(in_region, p) for p in pools] + [(live, p) for p in pools] + [(live, _ANY_POOL)]
    for index, (scope, candidate_pool) in enumerate(attempts):
        candidates = [g for g in scope if _in_pool(g, candidate_pool)]
        if candidates:
            weights = snapshot.zone_weights.get(region, {}) if region is not None else {}
            served = (
                None
                if candidate_pool == _ANY_POOL
                else (candidate_pool if candidate_pool is not None else DEFAULT_POOL_LABEL)
            )
            ordered = order_gateways(candidates, weights, account)
            return Choice(ordered[:limit], served, fallback=index > 0)
    return Choice([], None, fallback=True)


def order_gateways(
    candidates: Iterable[GatewayView], weights: dict[str, int], account: str
) -> list[GatewayView]:
    """Candidates by zone rank, load step, then a per-account rendezvous hash."""
    pool = list(candidates)
    zones = {g.zone for g in pool}
    ranked = sorted(
        zones,
        key=lambda zone: (
            zone not in weights,
            -weighted_score(account, zone, weights.get(zone, 1)),
            zone,
        ),
    )
    rank = {zone: index for index, zone in enumerate(ranked)}
    return sorted(
        pool,
        key=lambda g: (rank[g.zone], load_step(g), -_hash01("gw", g.id, account), g.id),
    )
