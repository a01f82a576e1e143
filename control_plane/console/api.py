"""``/v1/console/…``: what the operators' console needs beyond the resource APIs (admin).

The route preview answers with the routing code itself
(:meth:`control_plane.route.service.RouteService.preview`), so the console never
re-implements a routing rule; the charts come from :mod:`control_plane.console.scrape`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from control_plane.console.models import ChartPoint, ConsoleMetrics, MetricsTarget, RoutePreview
from control_plane.console.scrape import MetricsSampler
from control_plane.deps import require_admin
from control_plane.models.tenants import TENANT_ID_MAX
from control_plane.route.cache import SnapshotCache, SnapshotUnavailable
from control_plane.route.models import RouteGateway
from control_plane.route.request import PARAMETER_LIMITS, RouteRefused
from control_plane.route.service import RouteService
from control_plane.routes import ADMIN_ERRORS, error_responses
from data_plane.cluster.grayscale import bucket
from data_plane.cluster.identity import ACCOUNT_MAX_LENGTH

router = APIRouter(
    prefix="/v1/console",
    tags=["console"],
    dependencies=[Depends(require_admin)],
    responses=ADMIN_ERRORS,
)

_VERSION_MAX = PARAMETER_LIMITS["version"]
_PLATFORM_MAX = PARAMETER_LIMITS["platform"]
_IP_MAX = PARAMETER_LIMITS["ip"]


@router.get(
    "/route-preview",
    summary="Preview where an account is routed",
    operation_id="console-route-preview",
    responses=error_responses(
        e400="`ip` is not an IP address.",
        e503="No routing data: this process has never been able to read its database.",
    ),
)
async def route_preview(
    request: Request,
    tenant: Annotated[str, Query(min_length=1, max_length=TENANT_ID_MAX)],
    account: Annotated[str, Query(min_length=1, max_length=ACCOUNT_MAX_LENGTH)],
    version: Annotated[str | None, Query(max_length=_VERSION_MAX)] = None,
    platform: Annotated[str | None, Query(max_length=_PLATFORM_MAX)] = None,
    ip: Annotated[str | None, Query(max_length=_IP_MAX, description="Client address.")] = None,
) -> RoutePreview:
    """Where account `account` of `tenant`, with client version `version` on `platform`
    from address `ip`, would be sent by `GET /v1/route`: the same routing snapshot,
    GeoIP lookup, grayscale evaluation and gateway choice, without a user token (the
    tenant need not exist). Also says which rules decided the pool and the logic zone.
    """
    service: RouteService = request.app.state.route_preview
    try:
        routing, source = await service.preview(tenant, account, version, platform, ip)
    except RouteRefused as exc:
        raise HTTPException(exc.status, detail=exc.detail, headers=exc.headers) from exc
    choice, decision = routing.choice, routing.decision
    return RoutePreview(
        tenant=tenant,
        account=account,
        country=routing.geo.country,
        continent=routing.geo.continent,
        geo="admin" if source == "admin" else "none",
        region=routing.region,
        bucket=bucket(tenant, account),
        rule_id=decision.rule_id,
        pool_rule_id=decision.pool_rule_id,
        zone_rule_id=decision.zone_rule_id,
        logic_zone=decision.logic_zone,
        pool=choice.pool,
        fallback=choice.fallback,
        gateways=[
            RouteGateway(id=g.id, ws_url=g.ws_url, tcp_addr=g.tcp_addr, zone=g.zone)
            for g in choice.gateways
        ],
    )


@router.get("/metrics", summary="Live chart figures", operation_id="console-metrics")
async def console_metrics(request: Request) -> ConsoleMetrics:
    """Messages/s, logins/s, open connections and the p99 of logic requests over the
    last minutes, one point per scrape (at most one a second, shared by every console),
    from the Prometheus endpoints of the gateways and logic nodes named by
    `CIRNO_METRICS_TARGETS`. Without targets, only the connections the gateways
    heartbeat to the registry are charted.
    """
    sampler: MetricsSampler = request.app.state.console_sampler
    snapshots: SnapshotCache = request.app.state.snapshots
    clock = request.app.state.settings.clock

    async def registry_connections() -> float:
        try:
            snapshot = await snapshots.get()
        except SnapshotUnavailable:
            return 0.0
        now = clock()
        return float(sum(g.connections for g in snapshot.gateways if g.expires_at > now))

    history = await sampler.sample(registry_connections)
    return ConsoleMetrics(
        source="scrape" if sampler.targets else "registry",
        targets=[MetricsTarget(url=s.url, up=s.up, error=s.error) for s in sampler.states],
        points=[
            ChartPoint(
                at=p.at,
                messages_per_s=p.messages_per_s,
                logins_per_s=p.logins_per_s,
                connections=p.connections,
                p99_ms=p.p99_ms,
            )
            for p in history.points
        ],
    )
