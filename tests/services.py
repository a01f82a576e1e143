"""Real-server test services: MariaDB/MySQL and Redis.

The real-server variants of the contract suites run whenever the server's URL is set:
``CIRNO_TEST_MYSQL_URL`` (for example ``mysql://root@127.0.0.1:3306/test``) and
``CIRNO_TEST_REDIS_URL`` (for example ``redis://127.0.0.1:6379/0``). Without them they
are skipped with a clear reason, unless ``CIRNO_TEST_REQUIRE_SERVICES=1`` (as in CI),
which turns a missing URL into a failure so CI can never skip them silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

MYSQL_ENV = "CIRNO_TEST_MYSQL_URL"
REDIS_ENV = "CIRNO_TEST_REDIS_URL"
REQUIRE_ENV = "CIRNO_TEST_REQUIRE_SERVICES"


def services_required() -> bool:
    """True when CI demands the real-server variants."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def service_url(env: str) -> str:
    """The URL in ``env``, or skip (fail when services are required)."""
    url = os.environ.get(env, "")
    if url:
        return url
    reason = f"{env} is not set: the real-server variant is skipped"
    if services_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def mysql_dialect_url(url: str, driver: str) -> str:
    """``mysql://…`` as a SQLAlchemy URL for ``driver`` (``pymysql`` or ``aiomysql``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    return urlunsplit((f"{scheme}+{driver}", parts.netloc, parts.path, parts.query, ""))


@contextmanager
def fresh_mysql_database(base_url: str) -> Iterator[str]:
    """Create an empty database on the server of ``base_url``; yield its ``mysql://`` URL.

    Each test module gets its own database, so concurrent runs never share tables.
    The database is dropped afterwards.
    """
    import pymysql

    parts = urlsplit(base_url)
    name = f"cirno_t_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield _with_database(base_url, name)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
