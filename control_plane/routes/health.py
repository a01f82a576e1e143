"""``/healthz`` and ``/metrics``: liveness with a database check, Prometheus exposition."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from control_plane.db import SessionDep
from control_plane.metrics import HttpMetrics
from control_plane.models import Health

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Health check",
    operation_id="health-check",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health, "description": "DB down."}},
)
def healthz(session: SessionDep, response: Response) -> Health:
    """`ok` when the database answers `SELECT 1`, else 503 `unavailable`."""
    try:
        session.connection().execute(text("SELECT 1")).scalar_one()
    except SQLAlchemyError:
        log.warning("health check: the database does not answer", exc_info=True)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable")
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    operation_id="health-metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Text exposition."}},
)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    http_metrics: HttpMetrics = request.app.state.metrics
    return Response(generate_latest(http_metrics.registry), media_type=CONTENT_TYPE_LATEST)
