"""Serving the control plane: ``run(settings)`` is what ``cirno control`` calls."""

from __future__ import annotations

import gc
import logging

import uvicorn

from control_plane.app import create_app
from control_plane.http_protocol import read_deadline_protocol
from control_plane.migrate import upgrade
from control_plane.settings import ControlPlaneSettings

log = logging.getLogger(__name__)


def run(settings: ControlPlaneSettings) -> None:
    """Migrate the database to head, then serve the API until interrupted.

    One uvicorn worker on uvloop and httptools: the control plane is not on the message
    path, and several processes (gateways, logic nodes) poll it, not every client.

    ``proxy_headers=False``: uvicorn would otherwise rewrite the client address from
    ``X-Forwarded-For`` for peers in ``FORWARDED_ALLOW_IPS`` (loopback by default)
    before the app sees it; ``/v1/route`` believes the header only from
    ``CIRNO_TRUSTED_PROXIES``, so the app must see the real peer. No access log (at the
    ``warning`` level it was never written, but each request still formatted its
    arguments) and no ``server`` header.

    Limits (``control_plane.settings``): the httptools protocol is uvicorn's own with
    header and body read deadlines and a header size cap
    (``control_plane.http_protocol``); ``limit_concurrency`` is one more than
    ``max_connections`` because uvicorn counts the asking connection itself, so exactly
    ``max_connections`` open connections are served and a request on any further one is
    answered ``503 Service Unavailable`` with ``Connection: close`` (uvicorn's own
    answer, before the app). Body size and strict JSON are the app's
    (``control_plane.limits``).
    """
    upgrade(settings.database_url)
    app = create_app(settings)
    # uvicorn's own start-up lines are chatter (WARNING and up only): say it once here.
    geoip = settings.geoip_db or "none (every client goes to the default region)"
    log.info(
        "control plane starting on http://%s:%d, GeoIP %s", settings.host, settings.port, geoip
    )
    # Everything built so far (modules, the app, its schemas) lives as long as the
    # process: keep it out of the cyclic collector so full collections stay short.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=read_deadline_protocol(
            settings.header_timeout, settings.body_timeout, settings.max_header_bytes
        ),
        limit_concurrency=settings.max_connections + 1,
        log_level="warning",
        log_config=None,  # uvicorn's records go through the process's format (text or JSON)
        access_log=False,
        proxy_headers=False,
        server_header=False,
        workers=1,
    )
