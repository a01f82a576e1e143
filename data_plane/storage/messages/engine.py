"""The message store's engine and pooled connections, and how their failures are read.

- ``create_message_engine``: an SQLAlchemy async engine set up for the store. SQLite
  runs in WAL mode with ``synchronous=FULL`` and a busy timeout; write transactions
  (marked with the ``WRITE_OPTION`` execution option) start with ``BEGIN IMMEDIATE``
  and reads run in autocommit. MySQL runs at READ COMMITTED (no gap locks; every
  statement reads the latest commit) with a pre-ping pool, utf8mb4, and room for a
  large group's member list in one ``GROUP_CONCAT``.
- ``PooledConnections``: reads and group changes on the engine's pool (the send and ack
  writers hold connections of their own, see ``connections``).
- ``Retrying``: deadlocks, lock wait timeouts, a busy SQLite and unique-key races (another
  node storing the same client message id first) roll a transaction back and run it
  again, up to ``ATTEMPTS`` in all, after a short random backoff.
- Any database or connection failure surfaces as ``MessageStoreUnavailable``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.messages import aiomysql_patch
from data_plane.storage.urls import async_url, backend_of

A = TypeVar("A")
T = TypeVar("T")

WRITE_OPTION = "cirno_write"
"""Execution option marking the engine's write transactions (``BEGIN IMMEDIATE`` on SQLite)."""
ATTEMPTS = 5
"""Runs of a write transaction in all, the first one included."""
_MYSQL_RETRYABLE = frozenset({1205, 1213})  # lock wait timeout, deadlock
GROUP_CONCAT_MAX = 8 * 1024 * 1024
"""Session ``group_concat_max_len``: 10,000 ids of 64 4-byte characters in hex fit."""


def group_concat_command() -> str:
    """The MySQL ``init_command`` of every store connection (read when connecting)."""
    # Room for a 10,000-member group's member list in one GROUP_CONCAT.
    return f"SET SESSION group_concat_max_len = {GROUP_CONCAT_MAX}"


def create_message_engine(
    url: str, *, pool_size: int = 10, busy_timeout_s: float = 5.0, connect_timeout_s: int = 5
) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite:///…`` or ``mysql://…``) set up for the store."""
    if backend_of(url) == "sqlite":
        engine = create_async_engine(async_url(url), connect_args={"timeout": busy_timeout_s})
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    aiomysql_patch.apply()
    return create_async_engine(
        async_url(url),
        isolation_level="READ COMMITTED",
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        connect_args={
            "charset": "utf8mb4",
            "connect_timeout": connect_timeout_s,
            "init_command": group_concat_command(),
        },
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout_s: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from the driver, so write transactions can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Reads run in autocommit (no BEGIN, one round trip less): each is one statement
        # or tolerates seeing a newer commit between its statements.
        if conn.get_execution_options().get(WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def retryable(exc: DBAPIError) -> bool:
    """Whether ``exc`` is a transient conflict: the transaction may simply run again."""
    if isinstance(exc, IntegrityError):
        return True
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_RETRYABLE
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def connection_failure(exc: Exception) -> bool:
    """Whether ``exc`` means the database is unreachable (not one bad statement)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, OSError | SQLAlchemyError)


@contextmanager
def unavailable_on_db_error() -> Iterator[None]:
    """Database and connection errors raised inside as ``MessageStoreUnavailable``."""
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise MessageStoreUnavailable(f"message store failed: {exc!r}") from exc


class Retrying:
    """Runs transactions again after a transient conflict; ``count`` counts the reruns.

    One instance is shared by a store's writers and its pooled writes, so ``count`` is
    the store's ``retries``.
    """

    def __init__(self, attempts: int = ATTEMPTS) -> None:
        self._attempts = attempts
        self.count = 0

    async def run(self, transaction: Callable[[A], Awaitable[T]], arg: A) -> T:
        """``await transaction(arg)``, again (up to ``attempts`` in all) after a
        transient conflict (see ``retryable``); any other error is raised at once."""
        for number in range(self._attempts):
            try:
                return await transaction(arg)
            except DBAPIError as exc:
                if number + 1 == self._attempts or not retryable(exc):
                    raise
                self.count += 1
            await anyio.sleep(random.uniform(0.001, 0.005) * (number + 1))
        raise AssertionError("unreachable")


class PooledConnections:
    """Reads and group writes on the engine's pool, failures as unavailability.

    Reads run in autocommit (on SQLite; MySQL reads the latest commit at READ
    COMMITTED); writes run in one transaction each, retried by ``retrying``.
    """

    def __init__(self, engine: AsyncEngine, retrying: Retrying) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._retrying = retrying
        self._closed = False

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` on a pooled connection outside any write transaction."""
        self.check_open()
        with unavailable_on_db_error():
            async with self._engine.connect() as conn:
                return await work(conn)

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` in a write transaction, committed before this returns."""
        self.check_open()
        with unavailable_on_db_error():
            return await self._retrying.run(self._transaction, work)

    async def _transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._write_engine.begin() as conn:
            return await work(conn)

    def check_open(self) -> None:
        """Raise ``MessageStoreUnavailable`` once the store is closing."""
        if self._closed:
            raise MessageStoreUnavailable("the message store is closed")

    def close(self) -> None:
        """Refuse new work from now on."""
        self._closed = True

    async def dispose(self) -> None:
        """Close the pool's connections."""
        await self._engine.dispose()
