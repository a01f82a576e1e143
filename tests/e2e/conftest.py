"""A module-scoped all-in-one for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import Cluster, run_cluster

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
