"""A module-scoped all-in-one for the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from cirno.harness import Cluster, RawClient, run_cluster

TENANT = "acme"
SECRET = "acme-secret-0123456789-abcdefghijklmn"
OTHER_TENANT = "globex"
OTHER_SECRET = "globex-secret-987654321-zyxwvutsrqponm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``cirno up`` with two tenants with known secrets, short login/idle timeouts."""
    with run_cluster(
        tmp_path_factory.mktemp("cluster"),
        CIRNO_LOGIN_TIMEOUT="1.5",
        CIRNO_IDLE_TIMEOUT="3",
    ) as running:
        running.create_tenant(TENANT, SECRET)
        running.create_tenant(OTHER_TENANT, OTHER_SECRET)
        yield running


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Close the clients a test left open (a failing test skips its own cleanup), and let
    the loop finish closing their sockets before it goes away."""
    yield
    for client in list(RawClient.opened):
        client.close()
    await anyio.sleep(0.05)
