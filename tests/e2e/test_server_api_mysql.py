"""The server-API end-to-end tests again on ``cirno up`` with its tables in a real
MySQL/MariaDB database and its sessions in a real Redis (presence and kick read the
Redis session store, sends commit through the MySQL group commit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cirno.harness import Cluster, run_cluster
from tests.e2e.test_server_api import (  # noqa: F401 (collected here, on MySQL and Redis)
    CLUSTER_SECRET,
    api_keys,
    http,
    keep_clients,
    test_group_lifecycle_with_notifies_and_sends,
    test_history_pages_by_inbox_sequence_with_tombstones,
    test_presence_and_kick_of_live_sessions,
    test_send_reaches_online_and_offline_clients_once,
)

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Cluster]:
    with run_cluster(
        tmp_path_factory.mktemp("server_api_mysql"),
        CIRNO_CLUSTER_SECRET=CLUSTER_SECRET,
        CIRNO_DATABASE_URL=mysql_url,
        CIRNO_MESSAGE_DATABASE_URL=mysql_url,
        CIRNO_SESSION_URL=redis_url_module,
        CIRNO_SESSION_PREFIX=f"cirnotest:{uuid.uuid4().hex[:8]}",
    ) as running:
        yield running
