"""Shared fixtures: real MariaDB and Redis when their URLs are set (see tests/services.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.private_redis import PrivateRedis
from tests.services import MYSQL_ENV, REDIS_ENV, fresh_mysql_database, service_url


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    """A ``mysql://`` URL of a fresh, empty database on the real server (module scope)."""
    with fresh_mysql_database(service_url(MYSQL_ENV)) as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    """The real Redis server's URL."""
    return service_url(REDIS_ENV)


@pytest.fixture(scope="module")
def redis_url_module() -> str:
    """The real Redis server's URL, for module-scoped fixtures (use a key prefix)."""
    return service_url(REDIS_ENV)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``redis+cluster://`` URL of a real 3-master Redis Cluster for this test session."""
    from tests.redis_cluster import redis_cluster

    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix of its own for each test, so Redis tests never see each other's keys."""
    return f"cirnotest:{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio (the transports and picows are asyncio-based)."""
    return "asyncio"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A private ``redis-server`` for this module, which it may stop, restart or pause."""
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
