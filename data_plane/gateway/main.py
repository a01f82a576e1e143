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


async def serve(settings: GatewaySettings) -> None:
    """Run a gateway until cancelled."""
    serve_metrics("gateway", settings.ws_host, settings.metrics_port)
    await build_gateway(settings).run()
