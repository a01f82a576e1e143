"""Control-plane fixtures: a migrated database per test on SQLite and on MySQL.

``database_url`` is parametrized over both backends; the MySQL variant goes through the
shared ``mysql_url`` fixture, so it is skipped (or fails, when services are required)
without ``CIRNO_TEST_MYSQL_URL``. ``migrated_url`` is the same database at ``head`` and
empty: SQLite tests get a copy of a database migrated once per session; MySQL tests
share their module's database, migrated once and emptied before each test (migrating
MySQL up and down takes seconds).

Apps read time through a :class:`FakeClock` (the ``clock`` fixture), so tests advance
time instead of sleeping. ``geoip_db`` is a small MaxMind-format database written once
per session (see ``tests/control_plane/geo.py``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from control_plane.app import create_app
from control_plane.migrate import target_metadata, upgrade
from control_plane.settings import ControlPlaneSettings
from data_plane.storage.urls import sync_url
from tests.control_plane.geo import write_mmdb

ADMIN_TOKEN = "admin-token-for-tests"
CLUSTER_SECRET = "cluster-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLUSTER = {"X-Cirno-Cluster-Secret": CLUSTER_SECRET}


class FakeClock:
    """A settable clock of epoch seconds."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def settings_for(database_url: str, **overrides: Any) -> ControlPlaneSettings:
    """Settings of a test app on ``database_url``."""
    return ControlPlaneSettings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        cluster_secret=CLUSTER_SECRET,
        **overrides,
    )


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in ``tmp_path``, or the module's MySQL database."""
    if request.param == "mysql":
        url: str = request.getfixturevalue("mysql_url")
        return url
    return f"sqlite:///{tmp_path}/control.db"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "control.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="module")
def mysql_migrated(mysql_url: str) -> str:
    """The module's MySQL database, migrated to head once."""
    upgrade(mysql_url)
    return mysql_url


SEEDED_TABLES = frozenset({"revisions"})
"""Tables whose rows the migrations create: kept (revision counters only ever grow)."""


def empty_mysql(url: str) -> None:
    """Delete every row of every table but the seeded ones (the schema stays at head)."""
    tables = [
        t.name
        for metadata in target_metadata()
        for t in metadata.sorted_tables
        if t.name not in SEEDED_TABLES
    ]
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in tables:
                connection.execute(text(f"DELETE FROM `{table}`"))
            connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "mysql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at head: a fresh SQLite copy, or the module's emptied MySQL."""
    if request.param == "mysql":
        url: str = request.getfixturevalue("mysql_migrated")
        empty_mysql(url)
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    shutil.copyfile(template, tmp_path / "control.db")
    return f"sqlite:///{tmp_path}/control.db"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database only (for tests where the backend does not matter)."""
    shutil.copyfile(sqlite_template, tmp_path / "control.db")
    return f"sqlite:///{tmp_path}/control.db"


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the test's app, starting at the real time."""
    return FakeClock(float(int(time.time())))


@pytest.fixture(scope="session")
def geoip_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test GeoIP database (City type)."""
    return write_mmdb(tmp_path_factory.mktemp("geoip") / "test-city.mmdb")


@pytest.fixture
def client(migrated_url: str, clock: FakeClock) -> Iterator[TestClient]:
    """A client of an app on the migrated database, without credentials."""
    with TestClient(create_app(settings_for(migrated_url, clock=clock))) as test_client:
        yield test_client


def heartbeat_gateway(client: TestClient, node_id: str, **fields: Any) -> None:
    """Heartbeat a gateway of region ``eu``, zone ``eu-a`` (``fields`` override); assert 200."""
    body = {
        "id": node_id,
        "role": "gateway",
        "zone": "eu-a",
        "region": "eu",
        "version": "1.0.0",
        "ws_url": f"ws://{node_id}.test:8000/",
        "connections": 0,
        "capacity": 100,
        **fields,
    }
    response = client.post("/internal/v1/nodes/heartbeat", json=body, headers=CLUSTER)
    assert response.status_code == 200, response.text
