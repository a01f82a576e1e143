"""Answering ``GET /v1/route`` from the raw request, for both ways the route is served.

Theory of operation
-------------------
``GET /v1/route`` is the one control-plane route SDKs call, so it is served twice over:
by the FastAPI route declared in ``control_plane.route.api`` (which documents it in
the OpenAPI contract) and by the pure-ASGI fast path in ``control_plane.route.fast_path``,
which answers it before FastAPI's routing, dependency and response machinery run.
Both call :meth:`RouteService.answer` with the same three ASGI inputs (the raw query
string, the raw header list and the socket peer), so the decisions are made once, in
one place: the answer body, or :class:`RouteRefused` with the status, the reason and the
headers of the error. Only the framing differs, and ``tests/control_plane/
test_fast_route.py`` compares both paths byte for byte.

The order of the checks is part of the contract (it decides which error a request with
several problems gets): parameter lengths (400), the token (401 / 403), the address
(``?ip=``: 403 without the admin header, 400 when unparsable; a trusted proxy's bad
``X-Forwarded-For``: 400), then the gateways (503 when none is live). One 503 comes
earlier, right after the missing-token check and before the token is verified (with
the snapshot's keys): when the process has never been able to load a snapshot (its
database unreachable since start-up). A process that loaded one keeps answering from
it while the database is unreachable (``control_plane.route.cache``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from control_plane.deps import secrets_equal
from control_plane.geoip import NOT_FOUND as NO_GEO
from control_plane.geoip import GeoResolver, GeoResult
from control_plane.route.address import BadAddress, client_address, parse_ip
from control_plane.route.answer import encode_answer
from control_plane.route.cache import SnapshotCache, SnapshotUnavailable
from control_plane.route.choice import Choice, choose_gateways
from control_plane.route.choice import resolve_region as region_of
from control_plane.route.request import (
    ADMIN_HEADER,
    RawHeaders,
    RouteRefused,
    bearer_token,
    read_headers,
    read_parameters,
)
from control_plane.route.snapshot import Snapshot
from control_plane.settings import ControlPlaneSettings
from control_plane.tokens import TokenRefused, TokenVerifier, UnknownSigner, VerifiedToken
from data_plane.cluster.grayscale import ClientFacts, Decision, evaluate

_BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class RouteService:
    """Computes route answers from a request's raw query string, headers and peer.

    Holds no per-request state; it reads the app's snapshot cache (never the
    database on the request path), GeoIP reader and token verifier.
    """

    def __init__(
        self,
        settings: ControlPlaneSettings,
        geo: GeoResolver,
        snapshots: SnapshotCache,
        verifier: TokenVerifier,
    ) -> None:
        self.settings = settings
        self.geo = geo
        self.snapshots = snapshots
        self.verifier = verifier

    async def answer(
        self, query_string: bytes, headers: RawHeaders, client: tuple[str, int] | None
    ) -> bytes:
        """The JSON body of the route answer (a ``RouteAnswer``), or :class:`RouteRefused`.

        ``client`` is ASGI's ``scope["client"]`` (the socket peer, None when unknown).
        """
        params = read_parameters(query_string)
        authorization, admin_token, forwarded_for = read_headers(headers)
        token = params["token"]
        given = token if token is not None else bearer_token(authorization)
        if not given:
            raise RouteRefused(
                401, "missing token (?token= or Authorization: Bearer)", _BEARER_CHALLENGE
            )
        now = self.settings.clock()
        identity, snapshot = await self._verify(given, now)
        peer = client[0] if client is not None else None
        geo, source = self._locate(params["ip"], admin_token, peer, forwarded_for)
        version, platform = params["version"], params["platform"]
        routing = decide(snapshot, identity.tenant, identity.account, version, platform, geo, now)
        choice = routing.choice
        if not choice.gateways:
            raise RouteRefused(503, "no live gateway")
        return encode_answer(
            geo.country,
            geo.continent,
            routing.region,
            source,
            choice.pool,
            choice.fallback,
            choice.gateways,
            rule=routing.decision.pool_rule_id,
            fallback_reason=choice.fallback_reason,
        )

    async def preview(
        self,
        tenant: str,
        account: str,
        version: str | None,
        platform: str | None,
        ip: str | None,
    ) -> tuple[Routing, str]:
        """Where ``account`` of ``tenant`` would be routed, and the address source
        (``admin`` with ``ip``, ``none`` without: the default region), for operators.

        The same snapshot, GeoIP lookup and :func:`decide` as :meth:`answer`, minus the
        token: the caller is an admin naming the account. Raises :class:`RouteRefused`
        400 for an unparsable ``ip`` and 503 when no snapshot could ever be loaded; no
        live gateway is an answer here (an empty choice), not an error.
        """
        try:
            snapshot = await self.snapshots.get()
        except SnapshotUnavailable as exc:
            raise self._unavailable(exc) from exc
        geo: GeoResult = NO_GEO
        source = "none"
        if ip:
            try:
                geo, source = self.geo.lookup(parse_ip(ip)), "admin"
            except BadAddress as exc:
                raise RouteRefused(400, str(exc)) from exc
        routing = decide(snapshot, tenant, account, version, platform, geo, self.settings.clock())
        return routing, source

    async def _verify(self, token: str, now: float) -> tuple[VerifiedToken, Snapshot]:
        try:
            snapshot = await self.snapshots.get()
        except SnapshotUnavailable as exc:
            raise self._unavailable(exc) from exc
        try:
            return self.verifier.verify(token, snapshot, now), snapshot
        except UnknownSigner:
            # A tenant or key created a moment ago (possibly by another process): reload once.
            # (With a snapshot in hand, reload() never raises SnapshotUnavailable.)
            snapshot = await self.snapshots.reload()
        except TokenRefused as exc:
            raise _refused(exc) from exc
        try:
            return self.verifier.verify(token, snapshot, now), snapshot
        except TokenRefused as exc:
            raise _refused(exc) from exc

    def _unavailable(self, exc: SnapshotUnavailable) -> RouteRefused:
        """503 with the reason; ``Retry-After``: the next reload is one TTL away."""
        retry_after = str(max(1, math.ceil(self.settings.cache_ttl)))
        return RouteRefused(503, str(exc), {"Retry-After": retry_after})

    def _locate(
        self,
        ip: str | None,
        admin_token: str | None,
        peer: str | None,
        forwarded_for: list[str],
    ) -> tuple[GeoResult, str]:
        settings = self.settings
        if ip is not None:
            if admin_token is None or not secrets_equal(admin_token, settings.admin_token):
                raise RouteRefused(403, f"?ip= needs the {ADMIN_HEADER} header")
            try:
                return self.geo.lookup(parse_ip(ip)), "admin"
            except BadAddress as exc:
                raise RouteRefused(400, str(exc)) from exc
        try:
            address = client_address(peer, forwarded_for, settings.trusted_proxies)
        except BadAddress as exc:
            raise RouteRefused(400, f"bad X-Forwarded-For: {exc}") from exc
        found = self.geo.lookup(address) if address is not None else NO_GEO
        return found, found.source


@dataclass(frozen=True, slots=True)
class Routing:
    """What routing decided for one client: its location, region, rule decision and
    gateways (``choice.gateways`` is empty when no gateway is live at all)."""

    geo: GeoResult
    region: str | None
    decision: Decision
    choice: Choice


def decide(
    snapshot: Snapshot,
    tenant: str,
    account: str,
    version: str | None,
    platform: str | None,
    geo: GeoResult,
    now: float,
) -> Routing:
    """The one routing decision: region from the location, grayscale rules on the
    client's facts, then the gateways of the region and the rules' pool."""
    region = region_of(snapshot, geo.country, geo.continent)
    decision = evaluate(snapshot.rules, ClientFacts(tenant, account, version, platform, region))
    choice = choose_gateways(snapshot, region, decision.gateway_pool, account, now)
    return Routing(geo, region, decision, choice)


def _refused(exc: TokenRefused) -> RouteRefused:
    return RouteRefused(exc.status, exc.reason, _BEARER_CHALLENGE if exc.status == 401 else None)
