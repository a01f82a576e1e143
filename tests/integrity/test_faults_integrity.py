"""Processes killed mid-traffic, checked by the integrity harness (``cirno.verify``).

Each test starts its own topology -- a control plane, three logic nodes and two
gateways as separate ``cirno <role>`` processes on MySQL, sessions on Redis or on a real
3-master Redis Cluster -- runs SDK traffic between 16 users (1:1 and two groups), kills
one process with SIGKILL a few seconds in, and requires every acknowledged message to
reach every receiver exactly once and in order.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from cirno.harness import Topology, make_token, run_topology
from cirno.verify import IntegrityConfig, IntegrityReport, harness_options, run_integrity
from cirno_sdk import Client, Target, route_resolver

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

SECRET = "integrity-tenant-secret-0123456789-abcdef"
TRAFFIC_SECONDS = 12.0
FAULT_AFTER = 5.0


@contextmanager
def topology(tmp: Path, database_url: str, session_url: str, tenant: str) -> Iterator[Topology]:
    """Control plane, logic-1..3 and gateway-1..2 with one tenant."""
    with run_topology(
        tmp,
        database_url=database_url,
        session_url=session_url,
        session_prefix=f"integrity:{uuid.uuid4().hex[:8]}",
        logic_nodes=3,
        gateways=2,
        extra_env={"CIRNO_LOCATION_REFRESH_INTERVAL": "2"},
    ) as running:
        running.create_tenant(tenant, SECRET)
        yield running


def traffic(running: Topology, tenant: str) -> IntegrityConfig:
    """16 users over both gateways, 3 messages/s each, a quarter to two groups."""
    return IntegrityConfig(
        gateway_urls=tuple(running.ws_urls),
        tenant=tenant,
        secret=SECRET,
        users=16,
        groups=2,
        duration=TRAFFIC_SECONDS,
        rate=3.0,
        group_share=0.25,
        quiet=2.0,
    )


def kill(running: Topology, name: str) -> object:
    """A fault: SIGKILL one process (waiting for it off the event loop)."""

    async def fault() -> None:
        await anyio.to_thread.run_sync(running.stop, name, signal.SIGKILL)

    return fault


def assert_clean(report: IntegrityReport) -> None:
    print(report.render())
    assert report.acknowledged > 100, report.render()
    assert report.ok, report.render()
    assert report.delivered == report.expected


async def test_logic_node_killed_under_load(
    tmp_path: Path, mysql_url: str, redis_url_module: str
) -> None:
    with topology(tmp_path, mysql_url, redis_url_module, "integ-logic") as running:
        report = await run_integrity(
            traffic(running, "integ-logic"),
            fault=kill(running, "logic-2"),  # type: ignore[arg-type]
            fault_after=FAULT_AFTER,
        )
    assert_clean(report)


async def test_gateway_killed_under_load_on_redis_cluster(
    tmp_path: Path, mysql_url: str, redis_cluster_url: str
) -> None:
    with topology(tmp_path, mysql_url, redis_cluster_url, "integ-gw") as running:
        report = await run_integrity(
            traffic(running, "integ-gw"),
            fault=kill(running, "gateway-1"),  # type: ignore[arg-type]
            fault_after=FAULT_AFTER,
        )
        assert report.reconnects >= 8, "the clients of gateway-1 should have moved"
        # New clients get past the dead gateway too: with a list, and with the route.
        token = make_token("integ-gw", "latecomer", SECRET)
        targets: list[Target] = [
            list(running.ws_urls),
            route_resolver(running.control_url, token),
        ]
        for target in targets:
            async with Client(target, token, options=harness_options()) as late:
                sent = await late.send("latecomer", "made it")
                assert sent.message_id > 0
    assert_clean(report)
