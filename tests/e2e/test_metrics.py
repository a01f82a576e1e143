"""Every process serves health and Prometheus metrics."""

from __future__ import annotations

import httpx
import pytest

from cirno.harness import Cluster, RawClient, make_token
from tests.e2e.conftest import SECRET, TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_gateway_and_logic_node_metrics(cluster: Cluster) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    assert (await client.login(make_token(TENANT, "measured", SECRET))).status == 0
    async with httpx.AsyncClient(timeout=5) as http:
        gateway = (await http.get(cluster.metrics_urls["gateway"])).text
        logic = (await http.get(cluster.metrics_urls["logic"])).text
        control = await http.get(f"{cluster.control_url}/metrics")
        health = await http.get(f"{cluster.control_url}/healthz")
    assert 'cirno_up{role="gateway"} 1.0' in gateway
    assert 'cirno_gateway_connections{transport="ws"}' in gateway
    assert 'cirno_gateway_logins_total{result="ok"}' in gateway
    assert "cirno_gateway_logic_links_up 1.0" in gateway
    assert 'cirno_up{role="logic"} 1.0' in logic
    assert 'cirno_logic_requests_total{command="login.signin",outcome="ok"}' in logic
    assert "cirno_logic_request_seconds_bucket" in logic
    assert "cirno_logic_gateway_links 1.0" in logic
    assert 'outcome="client_error"' in logic
    assert control.status_code == 200 and health.status_code == 200
    client.close()
