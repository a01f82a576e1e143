"""Wiring of a gateway process."""

from __future__ import annotations

from data_plane.cluster.tenants import TenantDirectory
from data_plane.gateway.server import Gateway
from data_plane.gateway.settings import GatewaySettings
from data_plane.metrics import serve_metrics


def build_gateway(settings: GatewaySettings) -> Gateway:
    """A gateway with its tenant directory (call it inside the event loop: the gateway
    keeps time with the loop's clock)."""
    directory = TenantDirectory(
        settings.control_url,
        settings.cluster_secret,
        refresh_interval=settings.tenant_refresh_interval,
    )
    return Gateway(settings, directory)


def unmet_conditions(gateway: Gateway) -> list[str]:
    """What keeps ``gateway`` from being ready (``/readyz``): it must be linked to a
    logic node that runs the login service, and registered with the control plane."""
    unmet: list[str] = []
    if not gateway.pool.ready.is_set():
        unmet.append("no link to a logic node that serves logins")
    if not gateway.registered:
        unmet.append("not registered with the control plane")
    return unmet


async def serve(settings: GatewaySettings) -> None:
    """Run a gateway until cancelled."""
    gateway = build_gateway(settings)
    serve_metrics(
        "gateway", settings.ws_host, settings.metrics_port, lambda: unmet_conditions(gateway)
    )
    await gateway.run()
