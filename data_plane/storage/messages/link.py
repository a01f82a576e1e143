"""The connection each message-store writer holds across its transactions.

Theory of operation:

- Each group-commit writer (sends, acks) runs one transaction at a time, so it holds one
  connection of its own (``WriterLink``) instead of checking one out of the engine's pool
  for every batch: no pool checkout, no pre-ping round trip, no SQLAlchemy execution
  context per statement. The connection is opened lazily and dropped after any failure
  that leaves it in doubt; the next transaction opens a new one. So a database that went
  away fails the transactions that needed it, and one that came back is used again
  without a restart.
- Instead of a ping before every transaction (the engine's ``pool_pre_ping``, one round
  trip each): when a connection that served an earlier transaction turns out to be lost
  before COMMIT was sent, nothing was committed, so the transaction runs again once on a
  new connection. A server restart or idle timeout between batches fails no batch; a
  database that is down fails the batch (the new connection cannot be opened). A
  connection older than ``recycle_s`` is replaced.
- What a connection is (deferred statements, COMMIT last, errors as SQLAlchemy's) is in
  ``connections``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from data_plane.storage.messages.connections import (
    Connection,
    MysqlConnection,
    SqliteConnection,
    WriterConnection,
    connection_lost,
)
from data_plane.storage.urls import backend_of

A = TypeVar("A")
T = TypeVar("T")

RECYCLE_S = 3600.0
"""A MySQL writer connection this old is replaced (as the engine's ``pool_recycle``)."""


class WriterLink:
    """The connection one writer holds across its transactions (see the module docstring).

    ``transaction`` must not be called concurrently: a writer runs one at a time.
    ``connects`` counts the connections opened, ``round_trips`` the statement round
    trips of all of them (for tests and metrics).
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int = 5,
        busy_timeout_s: float = 5.0,
        mysql_init_command: str | None = None,
        recycle_s: float = RECYCLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._mysql = backend_of(url) == "mysql"
        self._connect_timeout_s = connect_timeout_s
        self._busy_timeout_s = busy_timeout_s
        self._init_command = mysql_init_command
        self._recycle_s = recycle_s
        self._clock = clock
        self._conn: Connection | None = None
        self._opened_at = 0.0
        self._used = False
        self._past_round_trips = 0
        self.connects = 0

    @property
    def round_trips(self) -> int:
        """Statement round trips so far, on every connection this link held."""
        held = self._conn.round_trips if self._conn is not None else 0
        return self._past_round_trips + held

    async def transaction(self, work: Callable[[WriterConnection, A], Awaitable[T]], arg: A) -> T:
        """``await work(connection, arg)`` in one transaction, committed before this returns.

        Any failure rolls the transaction back (or drops the connection when it is
        lost, which rolls it back on the server) and is raised. One exception, as the
        engine's pre-ping: when a connection held from before turns out to be lost
        before COMMIT was sent, nothing was committed, and ``work`` runs again on a new
        connection (a server restart or an idle timeout between two batches fails
        neither).
        """
        conn = await self._ready()
        reused = self._used
        try:
            return await self._attempt(conn, work, arg)
        except Exception as exc:
            if not (reused and connection_lost(exc) and not conn.committing):
                raise
        return await self._attempt(await self._ready(), work, arg)

    async def _attempt(
        self, conn: Connection, work: Callable[[WriterConnection, A], Awaitable[T]], arg: A
    ) -> T:
        try:
            await conn.begin()
            result = await work(conn, arg)
            await conn.commit()
        except Exception as exc:
            await self._after_failure(conn, exc)
            raise
        except BaseException:
            self._drop_now()
            raise
        self._used = True
        return result

    async def _ready(self) -> Connection:
        """The held connection, or a new one (also when the held one is too old)."""
        conn = self._conn
        if conn is not None and self._clock() - self._opened_at > self._recycle_s:
            await self.aclose()
            conn = None
        if conn is None:
            conn = await self._open()
        return conn

    async def _open(self) -> Connection:
        conn: Connection
        if self._mysql:
            conn = await MysqlConnection.connect(
                self._url, self._connect_timeout_s, self._init_command
            )
        else:
            conn = await SqliteConnection.connect(self._url, self._busy_timeout_s)
        self.connects += 1
        self._conn = conn
        self._opened_at = self._clock()
        self._used = False
        return conn

    async def _after_failure(self, conn: Connection, exc: Exception) -> None:
        if connection_lost(exc):
            self._drop_now()
            return
        try:
            await conn.rollback()
        except Exception:
            self._drop_now()

    def _drop_now(self) -> None:
        """Forget the connection, closing it without waiting (the server rolls back)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._past_round_trips += conn.round_trips
            conn.abort()

    async def aclose(self) -> None:
        """Close the held connection, if any."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._past_round_trips += conn.round_trips
            await conn.aclose()
