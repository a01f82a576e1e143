"""One all-in-one for the SDK tests, with one tenant, and helpers to reach it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import pytest

from cirno.harness import Cluster, RawClient, make_token, run_cluster
from data_plane.wire import Status

TENANT = "sdkco"
SECRET = "sdkco-secret-0123456789-abcdefghijklmnop"


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``cirno up`` on free ports with the tenant ``sdkco``, ready for logins.

    Shared by the modules of this package (every test uses accounts of its own), so the
    SDK suite starts the processes once.
    """
    # The tests send hundreds of messages back to back through one connection: the
    # default request rates (tests/abuse, docs/operations.md) are off for them.
    with run_cluster(
        tmp_path_factory.mktemp("sdk-cluster"),
        CIRNO_COMMANDS_PER_SECOND="0",
        CIRNO_ACCOUNT_COMMANDS_PER_SECOND="0",
    ) as running:
        running.create_tenant(TENANT, SECRET)
        anyio.run(_wait_tenant_known, running)
        yield running


async def _wait_tenant_known(cluster: Cluster, timeout: float = 10.0) -> None:
    """The gateway learns tenants by polling the control plane: wait until it knows ours."""
    deadline = time.monotonic() + timeout
    while True:
        client = await RawClient.tcp(cluster.tcp_addr)
        try:
            answer = await client.login(token("ready-probe"))
        finally:
            client.close()
        if answer.status == Status.SUCCESS:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"tenant {TENANT} not known to the gateway: {answer}")
        await anyio.sleep(0.2)


def token(account: str) -> str:
    """A user token of the test tenant."""
    return make_token(TENANT, account, SECRET)


def tcp_url(cluster: Cluster) -> str:
    """The gateway's TCP address as an SDK URL."""
    host, port = cluster.tcp_addr
    return f"tcp://{host}:{port}"
