"""The control plane's FastAPI application: ``create_app(settings)``."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from control_plane.db import make_engine
from control_plane.metrics import HttpMetrics, MetricsMiddleware
from control_plane.routes import health, internal, tenants
from control_plane.settings import ControlPlaneSettings

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


def create_app(settings: ControlPlaneSettings) -> FastAPI:
    """A control-plane app on the database of ``settings`` (already migrated).

    The app owns its engine and its metrics registry; the engine is disposed when the
    app shuts down. Migrating is the caller's job (``control_plane.server.run`` does).
    """
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title=TITLE,
        version=package_version(),
        description=(
            "REST API of the cirno-im control plane: tenants and their secrets, and the "
            "internal endpoints gateways and logic nodes read (cluster secret)."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = HttpMetrics(CollectorRegistry(auto_describe=True))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(tenants.router)
    app.include_router(internal.router)
    app.include_router(health.router)
    return app
