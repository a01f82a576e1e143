"""``GET /v1/route`` (smart routing, for SDKs) and ``GET /v1/ping``.

The route handler is the hot path of the control plane: it is ``async`` and reads an
in-memory snapshot (``control_plane.route.cache``), never the database, and answers with
pre-serialised JSON. See ``control_plane.route.choice`` for the algorithm and
``control_plane.route.service`` for the request handling, which this declared route
shares with the ASGI fast path (``control_plane.route.fast_path``) that serves it in the
app. ``control_plane.app`` includes :data:`router` like every other router.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from control_plane.models import Ping
from control_plane.route.models import RouteAnswer
from control_plane.route.request import ADMIN_HEADER, RouteRefused
from control_plane.route.service import RouteService
from control_plane.routes import error_responses

router = APIRouter(prefix="/v1", tags=["routing"])

_JSON = "application/json"


@router.get(
    "/ping",
    summary="Ping",
    operation_id="route-ping",
)
async def ping() -> Ping:
    """`{"ok": true}`: a trivial endpoint (load balancers, and the benchmark's baseline)."""
    return Ping(ok=True)


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
        e503="No live gateway at all; or no routing data, because this control-plane "
        "process has not been able to read its database since it started (with "
        "`Retry-After`). Once it has, it keeps answering from the last data it read "
        "while the database is unreachable.",
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
    service: RouteService = request.app.state.route_service
    try:
        body = await service.answer(
            request.scope["query_string"], request.scope["headers"], request.scope.get("client")
        )
    except RouteRefused as exc:
        raise HTTPException(exc.status, detail=exc.detail, headers=exc.headers) from exc
    return Response(content=body, media_type=_JSON)
