"""The control plane's FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import InterfaceError, OperationalError

from control_plane.console import mount_console
from control_plane.console.settings import ConsoleSettings
from control_plane.db import make_engine
from control_plane.errors import DATABASE_UNAVAILABLE
from control_plane.geoip import GeoResolver
from control_plane.limits import RequestLimits, validation_error_answer
from control_plane.metrics import HttpMetrics, MetricsMiddleware
from control_plane.outbound_store import MessageDatabases
from control_plane.route import api as route
from control_plane.route.cache import SnapshotCache
from control_plane.route.fast_path import ROUTE_PATH, RouteFastPath
from control_plane.route.service import RouteService
from control_plane.routes import (
    bans,
    grayscale,
    health,
    internal,
    moderation,
    nodes,
    push,
    regions,
    secrets,
    server_api,
    server_groups,
    tenants,
    webhooks,
)
from control_plane.server_calls import make_logic_client
from control_plane.settings import ControlPlaneSettings
from control_plane.tokens import TokenVerifier

TITLE = "cirno-im control plane"
DISTRIBUTION = "cirno-im"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def package_version() -> str:
    """The version of the ``cirno-im`` distribution (from a source tree: pyproject)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        with _PYPROJECT.open("rb") as f:
            version: str = tomllib.load(f)["project"]["version"]
        return version


def create_app(settings: ControlPlaneSettings, *, fast_route: bool = True) -> FastAPI:
    """A control-plane app on the database of ``settings`` (already migrated).

    The app owns its engine, its GeoIP reader, its route snapshot cache, its metrics
    registry and its logic-node client (the server API's link, dialled on first use);
    the engine, the reader and the link are closed when the app shuts down. Migrating is
    the caller's job (``control_plane.server.run`` does). Raises ``ConfigurationError``
    when the GeoIP database cannot be opened.

    ``GET /v1/route`` is served by the ASGI fast path (``control_plane.route.fast_path``)
    inside the metrics middleware; ``fast_route=False`` leaves it to the declared FastAPI
    route alone (the same answers; tests compare the two). Every other request passes
    ``control_plane.limits.RequestLimits`` (body cap, strict JSON) and validation
    errors are answered by ``control_plane.limits.validation_error_answer`` (bounded).
    """
    engine = make_engine(settings.database_url)
    geo = GeoResolver(settings.geoip_db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await app.state.logic_client.aclose()
            app.state.message_databases.dispose()
            engine.dispose()
            geo.close()

    app = FastAPI(
        title=TITLE,
        version=package_version(),
        description=(
            "REST API of the cirno-im control plane: tenants (keys, API keys, tokens, "
            "quotas), regions, grayscale rules, the node registry and smart routing "
            "(`/v1/route`), the tenants' server API (messages, presence, kick, bans, groups, "
            "history, webhooks, push), and the internal endpoints gateways and logic nodes use "
            "(cluster secret)."
        ),
        lifespan=lifespan,
        docs_url=None,  # served from local files by the console (no CDN)
        redoc_url=None,
        # The control plane's metrics are Prometheus (/metrics). FastAPI's native
        # OpenTelemetry, with no provider configured, still looked the three global
        # providers up on every request (~9 us, environment reads included).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.message_databases = MessageDatabases(settings, engine)
    app.state.logic_client = make_logic_client(settings)
    app.state.geo = geo
    app.state.metrics = HttpMetrics(CollectorRegistry(auto_describe=True))
    app.state.snapshots = SnapshotCache(
        engine, settings.clock, settings.cache_ttl, app.state.metrics.registry
    )
    app.state.token_verifier = TokenVerifier()
    app.state.route_service = RouteService(
        settings, geo, app.state.snapshots, app.state.token_verifier
    )
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)
    app.add_exception_handler(RequestValidationError, validation_error_answer)
    # The hot routes first: a request is matched against the routes in this order.
    for module in (route, internal, health, tenants, secrets, bans, regions, grayscale, nodes):
        app.include_router(module.router)
    app.include_router(webhooks.internal_router)
    for module in (webhooks, push, moderation, server_api, server_groups):
        app.include_router(module.router)
    mount_console(app, ConsoleSettings.from_env())
    # The middleware added last runs first: metrics, then the fast path, then the request
    # limits, then FastAPI. The fast path reads no body, so it needs no body limit.
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes)
    if fast_route:
        app.add_middleware(
            RouteFastPath, service=app.state.route_service, declared=declared_route(ROUTE_PATH)
        )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """503 with a reason, not 500, when a route's database cannot be reached or refuses
    to work right now (connection refused or lost, locked, deadlocked).

    The request may succeed when retried. Its transaction was rolled back, unless the
    connection was lost during the commit itself, whose outcome is then unknown, as with
    any answer lost on the network (a retried create then gets 409)."""
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE}, status_code=503, headers={"Retry-After": "1"}
    )


def declared_route(path: str) -> APIRoute:
    """The FastAPI route declared for ``GET path`` in ``control_plane.route.api``."""
    routes = [r for r in route.router.routes if isinstance(r, APIRoute) and r.path == path]
    for candidate in routes:
        if "GET" in (candidate.methods or set()):
            return candidate
    raise LookupError(f"no GET {path} route is declared")
