"""How a server-API route asks a logic node: one rule for every route.

A route authorizes the caller first (``authorize_tenant``: the admin token or the
tenant's API key), then :func:`ask_logic` reads the live logic nodes from the node
registry, releases its database connection (the wait that follows may last up to
``CIRNO_SERVER_API_TIMEOUT``), and sends one ``server.*`` request through the app's
:class:`~control_plane.logic_client.LogicClient`. The node's refusals keep their
meaning (422, 403, 404, 413: ``data_plane.cluster.server_api.http_status``); no node
reachable, no answer in time, or too many calls in flight is 503 with ``Retry-After``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import anyio.from_thread
from fastapi import FastAPI, HTTPException, Request, status
from sqlmodel import Session

from control_plane.logic_client import LogicClient, LogicUnavailable
from control_plane.models import NodeRole
from control_plane.registry import live_nodes
from control_plane.routes import error_responses
from control_plane.settings import ControlPlaneSettings
from data_plane.cluster import server_api
from data_plane.wire import Status

LOGIC_ERRORS = error_responses(
    e401="No bearer token and no `X-Api-Key`.",
    e403="Neither the admin token nor this tenant's API key (or the tenant is disabled).",
    e404="No tenant has this id (admin only; others get 403).",
    e503="No logic node is reachable or none answered within `CIRNO_SERVER_API_TIMEOUT`, "
    "or `CIRNO_SERVER_API_MAX_IN_FLIGHT` calls are in flight: retry.",
)


def make_logic_client(settings: ControlPlaneSettings) -> LogicClient:
    """The app's client (``app.state.logic_client``), named after this process."""
    return LogicClient(
        client_id=f"control:{socket.gethostname()}:{os.getpid()}",
        cluster_secret=settings.cluster_secret,
        timeout=settings.server_api_timeout,
        max_in_flight=settings.server_api_max_in_flight,
    )


def logic_client_of(app: FastAPI) -> LogicClient:
    """The client of the app serving a request."""
    client: LogicClient = app.state.logic_client
    return client


def ask_logic(
    request: Request,
    session: Session,
    now: float,
    tenant_id: str,
    command: str,
    account: str,
    body: dict[str, Any],
) -> dict[str, Any]:
    """Send ``command`` for ``tenant_id`` acting as ``account``; the node's JSON answer,
    or an ``HTTPException`` (see the module doc). Called from a route's worker thread."""
    addresses = [
        node.link_addr for node in live_nodes(session, now, NodeRole.LOGIC) if node.link_addr
    ]
    session.close()  # hand the database connection back before waiting on the node
    client = logic_client_of(request.app)
    try:
        answer = anyio.from_thread.run(client.call, addresses, command, tenant_id, account, body)
    except LogicUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "1"}
        ) from exc
    if answer.status != Status.SUCCESS:
        raise HTTPException(server_api.http_status(answer.status), detail=answer.reason)
    return answer.body
