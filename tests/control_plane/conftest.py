"""Control-plane fixtures: a migrated database per test on SQLite and on MySQL.

``database_url`` is parametrized over both backends; the MySQL variant goes through the
shared ``mysql_url`` fixture, so it is skipped (or fails, when services are required)
without ``CIRNO_TEST_MYSQL_URL``. Every test leaves its database at ``base``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.migrate import downgrade, upgrade
from control_plane.settings import ControlPlaneSettings

ADMIN_TOKEN = "admin-token-for-tests"
CLUSTER_SECRET = "cluster-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLUSTER = {"X-Cirno-Cluster-Secret": CLUSTER_SECRET}


def settings_for(database_url: str) -> ControlPlaneSettings:
    """Settings of a test app on ``database_url``."""
    return ControlPlaneSettings(
        database_url=database_url, admin_token=ADMIN_TOKEN, cluster_secret=CLUSTER_SECRET
    )


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in ``tmp_path``, or the module's MySQL database."""
    if request.param == "mysql":
        url: str = request.getfixturevalue("mysql_url")
        return url
    return f"sqlite:///{tmp_path}/control.db"


@pytest.fixture
def migrated_url(database_url: str) -> Iterator[str]:
    """``database_url`` migrated to head; migrated back to base afterwards."""
    upgrade(database_url)
    yield database_url
    downgrade(database_url)


@pytest.fixture
def client(migrated_url: str) -> Iterator[TestClient]:
    """A client of an app on the migrated database, without credentials."""
    with TestClient(create_app(settings_for(migrated_url))) as test_client:
        yield test_client
