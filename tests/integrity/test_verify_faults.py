"""``cirno verify`` with kim-style and SDK receivers, under all six faults, in short.

One cluster of real processes (``cirno cluster``'s topology: a 3-master Redis Cluster,
MySQL behind a proxy the harness cuts, a control plane, 3 logic nodes, 2 gateways, all
under the supervisor) serves two runs:

- without faults: SDK and kim-style receivers both get every acknowledged message
  exactly once and in order (this holds today);
- all six faults in one run, a couple of seconds each: every fault really happened
  (the killed process died with SIGKILL and a new pid took its place, the drained
  gateway exited 0, the proxy cut live connections and refused new ones, the Redis
  master rejoined), and SDK and kim-style receivers alike got everything exactly once
  and in order (kim clients fill no gaps: the logic node keeps pushes it cannot send
  and each gateway delivers every inbox row once and in order, docs/design.md,
  "Delivery promise"), and each fault reports a recovery time and a longest delay.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import pytest

from cirno.verify import IntegrityConfig
from cirno.verify_check import IntegrityReport
from cirno.verify_cli import run_on_cluster
from cirno.verify_faults import FAULTS, ManagedCluster
from tests.services import services_required

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.timeout(300)]

TENANT = "faults"
SECRET = "faults-tenant-secret-0123456789-abcdefgh"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mysql_url: str) -> Iterator[ManagedCluster]:
    if shutil.which("redis-server") is None:
        if services_required():
            pytest.fail("redis-server is not installed", pytrace=False)
        pytest.skip("redis-server is not installed")
    running = ManagedCluster(tmp_path_factory.mktemp("verify-faults"), mysql_url)
    try:
        running.start()
        running.create_tenant(TENANT, SECRET)
        yield running
    finally:
        running.stop()


def config(seconds: float | None) -> IntegrityConfig:
    """3 SDK users (1:1 and one group) and 3 kim-style partners at 2 messages/s."""
    return IntegrityConfig(
        gateway_urls=("ws://placeholder.invalid/",),  # replaced by the cluster's
        tenant=TENANT,
        secret=SECRET,
        users=3,
        groups=1,
        duration=seconds,
        rate=2.0,
        quiet=2.0,
        receivers="both",
        kim_share=0.5,
        fault_gap=2.0,
    )


@pytest.fixture(scope="module")
def quiet_run(cluster: ManagedCluster) -> IntegrityReport:
    return asyncio.run(run_on_cluster(cluster, config(5.0), []))


@pytest.fixture(scope="module")
def fault_run(cluster: ManagedCluster, quiet_run: IntegrityReport) -> IntegrityReport:
    report = asyncio.run(run_on_cluster(cluster, config(None), list(FAULTS), down=2.0))
    print(report.render())
    return report


def test_without_faults_both_kinds_get_everything(quiet_run: IntegrityReport) -> None:
    print(quiet_run.render())
    assert quiet_run.acknowledged > 0 and quiet_run.ok, quiet_run.render()
    kim = quiet_run.kim
    assert kim is not None and kim.acknowledged > 0
    assert (kim.lost, kim.duplicated, kim.out_of_order, kim.unexpected) == (0, 0, 0, 0)
    assert kim.delivered == kim.expected
    assert "kim receivers: " in quiet_run.render()


def test_every_fault_really_happened_and_recovered(fault_run: IntegrityReport) -> None:
    faults = {fault.name: fault for fault in fault_run.faults}
    assert list(faults) == list(FAULTS)
    for name in ("logic-kill", "gateway-kill", "redis-restart"):
        evidence = faults[name].evidence
        assert evidence["status"] == -9, evidence
        assert evidence["new_pid"] != evidence["old_pid"], evidence
    assert faults["redis-restart"].evidence["cluster_state"] == "ok"
    assert faults["gateway-drain"].evidence["status"] == 0  # drained, not killed
    assert faults["control-stop"].evidence["new_pid"] != faults["control-stop"].evidence["old_pid"]
    cut = faults["mysql-cut"].evidence
    assert cut["connect_refused"] is True and isinstance(cut["connections_cut"], int)
    assert cut["connections_cut"] > 0  # the logic nodes' pools held live connections
    for fault in fault_run.faults:
        assert fault.ended - fault.started >= 2.0, fault
        assert fault.send_recovery is not None, fault.render()
        assert fault.longest_delay is not None, fault.render()


def test_sdk_receivers_get_everything_under_all_faults(fault_run: IntegrityReport) -> None:
    assert fault_run.kind == "sdk" and fault_run.acknowledged > 50, fault_run.render()
    counts = (fault_run.lost, fault_run.duplicated, fault_run.out_of_order, fault_run.unexpected)
    assert counts == (0, 0, 0, 0), fault_run.render()
    assert fault_run.sync_failures == 0 and fault_run.delivered == fault_run.expected


def test_kim_receivers_get_no_duplicate_and_no_reordering_under_faults(
    fault_run: IntegrityReport,
) -> None:
    kim = fault_run.kim
    assert kim is not None and kim.acknowledged > 50, fault_run.render()
    assert (kim.duplicated, kim.out_of_order, kim.unexpected) == (0, 0, 0), fault_run.render()


def test_kim_receivers_lose_nothing_under_faults(fault_run: IntegrityReport) -> None:
    kim = fault_run.kim
    assert kim is not None
    assert kim.lost == 0, kim.line
