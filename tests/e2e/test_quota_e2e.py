"""A tenant's ``max_connections`` across gateways, over real processes: a control plane,
a logic node and two gateways (MariaDB, Redis).

Gateways learn each other's counts through their heartbeats. Instead of sleeping, the
tests wait on each gateway's ``cirno_gateway_heartbeats_total{result="ok"}``: two more
successful heartbeats mean one was sent after the change and answered.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from cirno.harness import (
    ADMIN_TOKEN,
    RawClient,
    Topology,
    free_port,
    make_token,
    run_topology,
)
from data_plane.transport.connection import CloseCode
from data_plane.wire import Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

NODE_TTL = 3
QUOTA = 3
OK_HEARTBEATS = 'cirno_gateway_heartbeats_total{result="ok"}'


@pytest.fixture(scope="module")
def metrics_ports() -> list[int]:
    return [free_port(), free_port()]


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory,
    mysql_url: str,
    redis_url_module: str,
    metrics_ports: list[int],
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("quota-e2e")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=1,
        gateways=2,
        extra_env={"CIRNO_NODE_TTL": str(NODE_TTL), "CIRNO_HEARTBEAT_INTERVAL": "0.5"},
        gateway_env=[{"CIRNO_GATEWAY_METRICS_PORT": str(port)} for port in metrics_ports],
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


class Tenant:
    """A tenant with a connection quota, and logins of its users on either gateway."""

    def __init__(self, topology: Topology, body: dict[str, Any]) -> None:
        self.topology = topology
        self.id: str = body["id"]
        self.secret: str = body["secret"]
        self._accounts = 0

    async def login(self, gateway: int) -> tuple[int, RawClient]:
        """Log a new account in on gateway ``gateway`` (0 or 1); (status, client)."""
        self._accounts += 1
        token = make_token(self.id, f"user{self._accounts}", self.secret)
        client = await RawClient.websocket(self.topology.ws_urls[gateway])
        answer = await client.login(token, timeout=15)
        if answer.status == Status.QUOTA_EXCEEDED:
            assert "quota" in answer.parse_body(pb.ErrorResp).message
            assert (await client.closed())[0] == CloseCode.QUOTA_EXCEEDED
        return answer.status, client

    async def held(self, gateway: int) -> RawClient:
        """A login on ``gateway`` that must succeed."""
        status, client = await self.login(gateway)
        assert status == Status.SUCCESS, status
        return client

    async def refused(self, gateway: int) -> None:
        """A login on ``gateway`` that must get QuotaExceeded (430)."""
        status, client = await self.login(gateway)
        client.close()
        assert status == Status.QUOTA_EXCEEDED, status

    async def admitted_eventually(self, gateway: int, timeout: float) -> RawClient:
        """Retry logins on ``gateway`` (refusals change nothing) until one succeeds."""
        with anyio.fail_after(timeout):
            while True:
                status, client = await self.login(gateway)
                if status == Status.SUCCESS:
                    return client
                assert status == Status.QUOTA_EXCEEDED, status
                client.close()
                await anyio.sleep(0.1)


@pytest.fixture
async def tenant(topology: Topology) -> Tenant:
    tenant_id = f"q{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(
        base_url=topology.control_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as admin:
        answer = await admin.post(
            "/v1/tenants", json={"id": tenant_id, "name": tenant_id, "max_connections": QUOTA}
        )
    assert answer.status_code == 201, answer.text
    return Tenant(topology, answer.json())


async def ok_heartbeats(http: httpx.AsyncClient, port: int) -> float:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(OK_HEARTBEATS):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def settle(http: httpx.AsyncClient, ports: list[int], order: tuple[int, ...]) -> None:
    """Wait until each gateway of ``order`` in turn sent a heartbeat after the previous
    one's was answered: then every change before the call has reached every gateway."""
    for gateway in order:
        start = await ok_heartbeats(http, ports[gateway])
        with anyio.fail_after(20):
            while True:
                if await ok_heartbeats(http, ports[gateway]) >= start + 2:
                    break
                await anyio.sleep(0.05)


SETTLE_ALL = (0, 1, 0)
"""gw-1's changes reach gw-2, and gw-2's (sent after) reach gw-1."""


async def test_the_quota_holds_across_two_gateways(
    tenant: Tenant, http: httpx.AsyncClient, metrics_ports: list[int]
) -> None:
    clients = [await tenant.held(0), await tenant.held(1), await tenant.held(0)]
    await settle(http, metrics_ports, SETTLE_ALL)
    await tenant.refused(0)
    await tenant.refused(1)
    for client in clients:
        client.close()


async def test_a_closed_connection_frees_its_slot_cluster_wide(
    tenant: Tenant, http: httpx.AsyncClient, metrics_ports: list[int]
) -> None:
    first, second, third = await tenant.held(0), await tenant.held(0), await tenant.held(1)
    await settle(http, metrics_ports, SETTLE_ALL)
    await tenant.refused(1)

    second.close()  # on gw-1: free there as soon as gw-1 has seen the close
    again = await tenant.admitted_eventually(0, timeout=10)
    await tenant.refused(0)
    again.close()
    await settle(http, metrics_ports, SETTLE_ALL)  # and on gw-2 after the heartbeats
    fourth = await tenant.held(1)
    await settle(http, metrics_ports, SETTLE_ALL)
    await tenant.refused(0)
    await tenant.refused(1)
    for client in (first, third, fourth):
        client.close()


async def test_the_last_known_counts_hold_while_the_control_plane_is_down(
    topology: Topology, tenant: Tenant, http: httpx.AsyncClient, metrics_ports: list[int]
) -> None:
    first, second, third = await tenant.held(0), await tenant.held(0), await tenant.held(1)
    await settle(http, metrics_ports, SETTLE_ALL)
    # uvicorn re-raises SIGTERM after its graceful shutdown, hence -SIGTERM.
    assert topology.stop("control") in (0, -signal.SIGTERM)
    try:
        await tenant.refused(1)  # gw-2 still counts gw-1's two
        await tenant.refused(0)
        second.close()  # gw-1's own count stays exact: the slot is free there...
        replacement = await tenant.admitted_eventually(0, timeout=10)
        replacement.close()
        with anyio.fail_after(10):
            while True:
                if await tenant_connections_on(http, metrics_ports[0]) == 1:
                    break
                await anyio.sleep(0.05)
        await tenant.refused(1)  # ...but gw-2 cannot hear of it: last known counts
    finally:
        topology.start("control", "control", {})
        wait_for_port(topology.control_url)
    await settle(http, metrics_ports, SETTLE_ALL)
    fourth = await tenant.held(1)  # heard of at last
    for client in (first, third, fourth):
        client.close()


async def tenant_connections_on(http: httpx.AsyncClient, port: int) -> float:
    """Open WebSocket connections of gw ``port`` (the test's tenant is the only user)."""
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith('cirno_gateway_connections{transport="ws"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_port(url: str, timeout: float = 30.0) -> None:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come back in {timeout} s")


async def live_nodes(topology: Topology, http: httpx.AsyncClient) -> dict[str, bool]:
    """Live gateway id → whether it is draining, as the registry lists them."""
    answer = await http.get(
        f"{topology.control_url}/internal/v1/nodes",
        params={"role": "gateway"},
        headers={"X-Cirno-Cluster-Secret": topology.env["CIRNO_CLUSTER_SECRET"]},
    )
    assert answer.status_code == 200, answer.text
    return {node["id"]: node["draining"] for node in answer.json()["nodes"]}


async def test_a_drained_gateway_frees_its_slots_before_it_expires(
    topology: Topology, tenant: Tenant, http: httpx.AsyncClient, metrics_ports: list[int]
) -> None:
    held = [await tenant.held(0), await tenant.held(0), await tenant.held(1)]
    await settle(http, metrics_ports, SETTLE_ALL)
    await tenant.refused(1)
    assert topology.stop("gateway-1") == 0  # SIGTERM: the last heartbeat reports none
    admitted = await tenant.admitted_eventually(1, timeout=10)
    assert (await live_nodes(topology, http)).get("gw-1") is True, "not by expiry"
    ws_port = int(topology.ws_urls[0].rsplit(":", 1)[1].strip("/"))
    topology.start(
        "gateway-1",
        "gateway",
        {
            "CIRNO_GATEWAY_ID": "gw-1",
            "CIRNO_GATEWAY_WS_PORT": str(ws_port),
            "CIRNO_GATEWAY_TCP_PORT": str(topology.tcp_addrs[0][1]),
            "CIRNO_GATEWAY_METRICS_PORT": str(metrics_ports[0]),
        },
    )
    with anyio.fail_after(30):  # back and heartbeating (for the next test)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if await ok_heartbeats(http, metrics_ports[0]) >= 1:
                    break
            await anyio.sleep(0.1)
    for client in [*held, admitted]:
        client.close()


async def test_an_expired_gateways_connections_stop_counting(
    topology: Topology, tenant: Tenant, http: httpx.AsyncClient, metrics_ports: list[int]
) -> None:
    """Last in the module: it kills gw-1."""
    held = [await tenant.held(0), await tenant.held(0), await tenant.held(1)]
    await settle(http, metrics_ports, SETTLE_ALL)
    await tenant.refused(1)
    topology.stop("gateway-1", signal.SIGKILL)  # no draining heartbeat: it must expire
    started = time.monotonic()
    admitted = [await tenant.admitted_eventually(1, timeout=NODE_TTL + 20)]
    assert time.monotonic() - started > 1.0, "gw-1's connections counted until it expired"
    admitted.append(await tenant.held(1))
    await tenant.refused(1)  # gw-2 holds the whole quota now
    for client in held + admitted:
        client.close()
