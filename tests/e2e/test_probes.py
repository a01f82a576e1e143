"""``/healthz`` and ``/readyz`` of gateways and logic nodes, and metrics that belong to
the process exporting them, over real processes."""

from __future__ import annotations

import httpx
import pytest

from cirno.harness import Cluster, RawClient, make_token
from data_plane.wire import Command, Status, pb
from tests.e2e.conftest import SECRET, TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(url)


async def _probe(metrics_url: str, path: str) -> httpx.Response:
    return await _get(metrics_url.replace("/metrics", path))


def _samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


async def test_a_running_gateway_and_logic_node_are_alive_and_ready(cluster: Cluster) -> None:
    for role in ("gateway", "logic"):
        health = await _probe(cluster.metrics_urls[role], "/healthz")
        ready = await _probe(cluster.metrics_urls[role], "/readyz")
        assert (health.status_code, health.text) == (200, "ok\n"), role
        assert (ready.status_code, ready.text) == (200, "ready\n"), role


async def test_each_process_exports_only_its_own_metrics(cluster: Cluster) -> None:
    gateway = _samples((await _get(cluster.metrics_urls["gateway"])).text)
    logic = _samples((await _get(cluster.metrics_urls["logic"])).text)
    assert "cirno_gateway_logic_links_up 1.0" in gateway
    assert "cirno_logic_gateway_links 1.0" in logic
    # No gauge of the other role, which would read 0 there.
    assert [s for s in gateway if s.startswith("cirno_logic_")] == []
    assert [s for s in logic if s.startswith("cirno_gateway_")] == []
    assert 'cirno_up{role="gateway"} 1.0' in gateway and 'cirno_up{role="logic"} 1.0' in logic
    assert [s for s in gateway if s.startswith('cirno_up{role="logic"}')] == []


async def _count(metrics_url: str, command: str, outcome: str) -> float:
    wanted = f'cirno_logic_requests_total{{command="{command}",outcome="{outcome}"}}'
    for line in _samples((await _get(metrics_url)).text):
        name, _, value = line.rpartition(" ")
        if name == wanted:
            return float(value)
    return 0.0


async def test_a_client_mistake_is_a_client_error_not_a_fault(cluster: Cluster) -> None:
    logic, detail = cluster.metrics_urls["logic"], Command.CHAT_GROUP_DETAIL
    outcomes = ("ok", "client_error", "error")
    before = {o: await _count(logic, detail, o) for o in outcomes}
    client = await RawClient.websocket(cluster.ws_url)
    try:
        assert (await client.login(make_token(TENANT, "prober", SECRET))).status == 0
        seq = client.request(detail, pb.GroupGetReq(group_id="no-such-group"))
        assert (await client.response(seq)).status == Status.NOT_FOUND
    finally:
        client.close()
    after = {o: await _count(logic, detail, o) for o in outcomes}
    assert after["client_error"] == before["client_error"] + 1
    assert (after["ok"], after["error"]) == (before["ok"], before["error"])
