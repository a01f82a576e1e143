"""A pure-ASGI fast path for ``GET /v1/route`` in front of the FastAPI router.

Why: a route answer's own work (token, GeoIP, region, grayscale, gateway choice, JSON)
costs about as much as the framework around it: FastAPI's exception middleware, route
matching, request and response objects and dependency solving run for every request.
SDKs call this route on every (re)connect, so :class:`RouteFastPath` answers
``GET /v1/route`` itself and hands everything else, unchanged, to the app.

What stays equal: the route is still declared in the FastAPI app (the OpenAPI contract
and the schemathesis test cover it, and the test traffic goes through this fast path,
since it sits in the app's middleware stack); both call
:meth:`control_plane.route.service.RouteService.answer`, so they make the same decisions;
the fast path writes the same status, headers and bytes FastAPI writes (errors as
``{"detail": …}`` rendered like Starlette's ``JSONResponse``); it sets ``scope["route"]``
to the declared route, so the metrics middleware around it labels the request as the
router would; an unexpected exception propagates to the same server-error middleware.
Anything else (another method, ``HEAD``, a trailing slash, a mounted ``root_path``)
falls through to FastAPI, which answers as before.
"""

from __future__ import annotations

import json

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.route.request import RouteRefused
from control_plane.route.service import RouteService

ROUTE_PATH = "/v1/route"
_JSON = (b"content-type", b"application/json")
# Exactly Starlette's JSONResponse.render, which FastAPI's HTTPException handler uses.
_encode_error = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
).encode


class RouteFastPath:
    """Pure ASGI middleware serving ``GET /v1/route`` with ``service``; the rest goes on.

    ``declared`` is the app's own route object for ``/v1/route`` (what the router
    would put in ``scope["route"]``).
    """

    def __init__(self, app: ASGIApp, service: RouteService, declared: BaseRoute) -> None:
        self.app = app
        self.service = service
        self.declared = declared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != ROUTE_PATH
            or scope["method"] != "GET"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.declared
        headers: list[tuple[bytes, bytes]]
        try:
            body = await self.service.answer(
                scope["query_string"], scope["headers"], scope.get("client")
            )
            status = 200
            headers = []
        except RouteRefused as exc:
            body = _encode_error({"detail": exc.detail}).encode("utf-8")
            status = exc.status
            headers = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in (exc.headers or {}).items()
            ]
        # The order Starlette's Response uses: given headers, content-length, content-type.
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        headers.append(_JSON)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
