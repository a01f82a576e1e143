"""``GET /v1/route`` (smart routing, for SDKs) and ``GET /v1/ping``.

The route handler is the hot path of the control plane: it is ``async`` and reads an
in-memory snapshot (``control_plane.snapshot``), never the database, and answers with
pre-serialised JSON. See ``control_plane.routing`` for the algorithm.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status

from control_plane.deps import secrets_equal
from control_plane.geoip import NOT_FOUND as NO_GEO
from control_plane.geoip import GeoResolver, GeoResult
from control_plane.models import Ping, RouteAnswer
from control_plane.models.routing import HEARTBEAT_INTERVAL_S, Reconnect
from control_plane.routes import error_responses
from control_plane.routing import BadAddress, choose_gateways, client_address, parse_ip
from control_plane.routing import resolve_region as region_of
from control_plane.settings import ControlPlaneSettings
from control_plane.snapshot import Snapshot, SnapshotCache
from control_plane.tokens import TokenRefused, TokenVerifier, UnknownSigner, VerifiedToken
from data_plane.cluster.grayscale import ClientFacts, evaluate

router = APIRouter(prefix="/v1", tags=["routing"])

ADMIN_HEADER = "X-Cirno-Admin-Token"
_RECONNECT = Reconnect().model_dump()
_JSON = "application/json"


@router.get(
    "/ping",
    summary="Ping",
    operation_id="route-ping",
)
async def ping() -> Ping:
    """`{"ok": true}`: a trivial endpoint (load balancers, and the benchmark's baseline)."""
    return Ping(ok=True)


def _refuse(exc: TokenRefused) -> HTTPException:
    return HTTPException(
        status_code=exc.status,
        detail=exc.reason,
        headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None,
    )


async def _verify(request: Request, token: str, now: float) -> tuple[VerifiedToken, Snapshot]:
    cache: SnapshotCache = request.app.state.snapshots
    verifier: TokenVerifier = request.app.state.token_verifier
    snapshot = await cache.get()
    try:
        return verifier.verify(token, snapshot, now), snapshot
    except UnknownSigner:
        # A tenant or key created a moment ago (possibly by another process): reload once.
        snapshot = await cache.reload()
    except TokenRefused as exc:
        raise _refuse(exc) from exc
    try:
        return verifier.verify(token, snapshot, now), snapshot
    except TokenRefused as exc:
        raise _refuse(exc) from exc


def _locate(
    request: Request, settings: ControlPlaneSettings, ip: str | None, admin_token: str | None
) -> tuple[GeoResult, str]:
    geo: GeoResolver = request.app.state.geo
    if ip is not None:
        if admin_token is None or not secrets_equal(admin_token, settings.admin_token):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"?ip= needs the {ADMIN_HEADER} header"
            )
        try:
            return geo.lookup(parse_ip(ip)), "admin"
        except BadAddress as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    peer = request.client.host if request.client is not None else None
    try:
        address = client_address(
            peer, request.headers.getlist("x-forwarded-for"), settings.trusted_proxies
        )
    except BadAddress as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"bad X-Forwarded-For: {exc}"
        ) from exc
    found = geo.lookup(address) if address is not None else NO_GEO
    return found, found.source


_PARAMETER_LIMITS = {"token": None, "version": 32, "platform": 32, "ip": 64}
ROUTE_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "token",
        "in": "query",
        "required": False,
        "description": "The user token (or send it as `Authorization: Bearer <token>`).",
        "schema": {"type": "string"},
    },
    {
        "name": "version",
        "in": "query",
        "required": False,
        "description": "Client version, e.g. 1.10.0 (grayscale rules may match it).",
        "schema": {"type": "string", "maxLength": 32},
    },
    {
        "name": "platform",
        "in": "query",
        "required": False,
        "description": "Client platform, e.g. ios, android, web.",
        "schema": {"type": "string", "maxLength": 32},
    },
    {
        "name": "ip",
        "in": "query",
        "required": False,
        "description": f"Route as if the client had this address (needs `{ADMIN_HEADER}`).",
        "schema": {"type": "string", "maxLength": 64},
    },
    {
        "name": ADMIN_HEADER,
        "in": "header",
        "required": False,
        "description": "The admin token; required with `?ip=`.",
        "schema": {"type": "string"},
    },
]


def _parameters(request: Request) -> dict[str, str | None]:
    """The query parameters of a route request, length-checked (400 when too long)."""
    query = request.query_params
    values: dict[str, str | None] = {}
    for name, limit in _PARAMETER_LIMITS.items():
        value = query.get(name)
        if value is not None and limit is not None and len(value) > limit:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, detail=f"{name} is longer than {limit} characters"
            )
        values[name] = value
    return values


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


@router.get(
    "/route",
    summary="Where should this client connect?",
    operation_id="route-get",
    response_model=RouteAnswer,
    responses=error_responses(
        e400="`?ip=` or a trusted proxy's `X-Forwarded-For` is not an IP address, or a "
        "parameter is too long.",
        e401="No token, or a malformed, expired, foreign or badly signed one.",
        e403="The tenant is disabled, or `?ip=` without the admin header.",
        e503="No live gateway at all.",
    ),
    openapi_extra={"parameters": ROUTE_PARAMETERS},
)
async def route(request: Request) -> Response:
    """Resolve the client's address (the socket peer; `X-Forwarded-For` only from
    `CIRNO_TRUSTED_PROXIES`) to a country and continent with GeoIP, map it to a region,
    apply the grayscale rules, and return up to three live, non-draining gateways of the
    region and pool: the account's zone (weighted) first, then by load. When the pool or
    region has no live gateway, others are returned with `fallback: true`. Also returns
    the heartbeat interval and the reconnect back-off clients should use.

    The user token comes as `?token=` or `Authorization: Bearer <token>`. (This is the
    hot path: its parameters are read from the request directly rather than through
    FastAPI's parameter machinery, which costs as much as the routing itself; they are
    declared for the OpenAPI document by hand.)
    """
    settings: ControlPlaneSettings = request.app.state.settings
    params = _parameters(request)
    token = params["token"]
    given = token if token is not None else _bearer(request)
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing token (?token= or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    now = settings.clock()
    identity, snapshot = await _verify(request, given, now)
    geo, source = _locate(request, settings, params["ip"], request.headers.get(ADMIN_HEADER))
    region = region_of(snapshot, geo.country, geo.continent)
    facts = ClientFacts(
        identity.tenant, identity.account, params["version"], params["platform"], region
    )
    decision = evaluate(snapshot.rules, facts)
    choice = choose_gateways(snapshot, region, decision.gateway_pool, identity.account, now)
    if not choice.gateways:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no live gateway")
    answer: dict[str, Any] = {
        "country": geo.country,
        "continent": geo.continent,
        "region": region,
        "geo": source,
        "pool": choice.pool,
        "fallback": choice.fallback,
        "gateways": [
            {"id": g.id, "ws_url": g.ws_url, "tcp_addr": g.tcp_addr, "zone": g.zone}
            for g in choice.gateways
        ],
        "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
        "reconnect": _RECONNECT,
    }
    return Response(content=json.dumps(answer, separators=(",", ":")), media_type=_JSON)
