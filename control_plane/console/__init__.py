"""The operators' console (``/console``), the browser chat client (``/console/chat``)
and the offline API docs (``/docs``, ``/redoc``).

:func:`mount_console` is all ``control_plane.app`` calls: it adds the admin endpoints
the console uses (``/v1/console/…``, in the OpenAPI contract), the pages, their assets
and the docs. The browser code is plain ES modules and CSS in ``static/`` (no build
step); it calls the same REST API as any other admin client, with the admin token the
operator signs in with (kept in ``sessionStorage``).
"""

from __future__ import annotations

from fastapi import FastAPI

from control_plane.console import api
from control_plane.console.pages import mount_pages
from control_plane.console.scrape import MetricsSampler
from control_plane.console.settings import ConsoleSettings


def mount_console(app: FastAPI, settings: ConsoleSettings) -> None:
    """Add the console's API router, pages, assets and the offline docs to ``app``.

    ``app.state.settings`` and ``app.state.route_service`` must already be set, and the
    app created with ``docs_url=None, redoc_url=None``.
    """
    # The preview asks the app's routing service itself; kept under a name of its own
    # so that a test replacing ``route_service`` (the declared /v1/route's) keeps it.
    app.state.route_preview = app.state.route_service
    app.state.console_sampler = MetricsSampler(settings.metrics_targets, app.state.settings.clock)
    app.include_router(api.router)
    mount_pages(app)
