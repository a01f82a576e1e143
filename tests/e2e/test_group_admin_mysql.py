"""The group-administration and private-group tests again, with ``cirno up`` keeping its
tables (control plane and messages) in a real MySQL/MariaDB database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect

from cirno.harness import Cluster, run_cluster
from data_plane.storage.urls import sync_url
from tests.abuse.test_groups_names_pushes import (  # noqa: F401 (collected here, on MySQL)
    test_row4_a_private_group_looks_missing_to_outsiders,
    test_row9_members_that_are_no_accounts_are_refused,
)
from tests.e2e.conftest import SECRET, TENANT
from tests.e2e.test_group_admin import (  # noqa: F401 (collected here, on MySQL)
    test_join_policies_invite_open_and_approval,
    test_mutes_refuse_talks_but_not_the_managers,
    test_only_the_owner_dismisses_transfers_and_appoints,
    test_update_name_and_announcement_reach_members,
)

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.anyio]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mysql_url: str) -> Iterator[Cluster]:
    """``cirno up`` on a fresh MySQL database, with the e2e suite's tenant."""
    with run_cluster(
        tmp_path_factory.mktemp("mysql"),
        CIRNO_DATABASE_URL=mysql_url,
        CIRNO_MESSAGE_DATABASE_URL=mysql_url,
    ) as running:
        running.create_tenant(TENANT, SECRET)
        engine = create_engine(sync_url(mysql_url))
        try:  # the messages are in MySQL: cirno up migrated it to the group tables
            assert "group_applications" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
        yield running
