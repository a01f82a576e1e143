"""Connections held by the message store's writers: raw driver, statements sent together.

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
- Statements that return no rows are deferred: they are sent with the next statement that
  returns rows, or with COMMIT — on MySQL as one multi-statement packet (one round trip),
  on SQLite as one call into the writer thread — instead of one round trip each. They run
  in the same order, on the same connection, in the same transaction, so every lock is
  taken in the same order as before; only an error of theirs surfaces later, at that
  query or at the commit, where it fails and rolls back the transaction as it did before
  (nothing has been answered yet).
- COMMIT is the last statement of the last packet. MySQL stops a multi-statement packet at
  the first statement that fails and SQLite runs them one by one, so a failure never
  commits part of a transaction. A failure while committing is an unknown outcome and is
  raised like any other: never a false success.
- Driver errors are raised as SQLAlchemy ``DBAPIError`` subclasses (``IntegrityError``,
  ``OperationalError``, …) with the driver's error as ``orig``, as the engine raises
  them, so retries and unavailability are decided the same way for both paths.
- SQLite: the sqlite3 module blocks (COMMIT waits for an fsync, BEGIN IMMEDIATE for the
  busy timeout), so the connection lives in one worker thread of its own; WAL,
  synchronous=FULL and the busy timeout are set as on the engine's connections, and write
  transactions start with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from data_plane.storage.urls import backend_of

T = TypeVar("T")

RECYCLE_S = 3600.0
"""A MySQL writer connection this old is replaced (as the engine's ``pool_recycle``)."""
SCRIPT_CHARS = 1_000_000
"""Deferred MySQL statements are sent before their packet would exceed this many
characters (max_allowed_packet is 16 MiB by default; a character is at most 4 bytes)."""
_SHOWN_CHARS = 300
"""Characters of a failed statement kept in the error (they can be megabytes)."""
_LOST_CONNECTION = frozenset({2003, 2006, 2013, 2055})
"""MySQL client errors that mean the connection is gone (cannot connect, gone away, lost)."""

Row = tuple[Any, ...]


class WriterConnection(Protocol):
    """One transaction's view of a writer connection (see the module docstring)."""

    mark: str
    """The driver's placeholder: ``?`` (SQLite) or ``%s`` (MySQL)."""

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Run a statement that returns no rows; it may be sent with a later one."""

    async def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """``execute`` once per parameter row, in order."""

    async def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run the deferred statements, then this one; its rows."""

    def escape(self, value: object) -> str:
        """``value`` as an SQL literal of this connection (MySQL only)."""


class _Connection(WriterConnection, Protocol):
    committing: bool
    """Set once COMMIT was sent in the current transaction (its outcome may be unknown)."""
    round_trips: int
    """Packets sent (MySQL) or calls into the worker thread (SQLite) for statements."""

    async def begin(self) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def aclose(self) -> None: ...
    def abort(self) -> None: ...


def _wrapped(statement: str | None, exc: Exception, base: type[Exception]) -> DBAPIError:
    """``exc`` of the driver as the SQLAlchemy error the engine would have raised."""
    shown = statement or ""
    if len(shown) > _SHOWN_CHARS:
        shown = shown[:_SHOWN_CHARS] + "…"
    lost = _lost_mysql(exc)
    error = DBAPIError.instance(shown, None, exc, base, connection_invalidated=lost)
    return cast(DBAPIError, error)


def _lost_mysql(exc: BaseException) -> bool:
    import pymysql.err

    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args else None
    return isinstance(exc, pymysql.err.OperationalError) and code in _LOST_CONNECTION


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` leaves the connection unusable (no rollback is attempted on it)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    return isinstance(exc, OSError)


def _quiet_cursor_class() -> type[Any]:
    """aiomysql's cursor without its ``SHOW WARNINGS`` after a statement with warnings
    (one more round trip, and a Python warning per server note), as SQLAlchemy's
    aiomysql dialect uses it."""
    import aiomysql

    class QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
        async def _show_warnings(self, conn: Any) -> None:
            pass

    return QuietCursor


class _MysqlConnection:
    """An aiomysql connection (autocommit off, READ COMMITTED) with deferred statements."""

    mark = "%s"

    def __init__(self, raw: Any, cursor: Any) -> None:
        self.committing = False
        self.round_trips = 0
        self._raw = raw
        self._cursor = cursor
        self._pending: list[str] = []
        self._pending_chars = 0

    @classmethod
    async def connect(
        cls, url: str, connect_timeout_s: int, init_command: str | None
    ) -> _MysqlConnection:
        import aiomysql
        import pymysql.err

        parts = make_url(url)
        try:
            raw = await aiomysql.connect(
                host=parts.host or "localhost",
                port=parts.port or 3306,
                user=parts.username,
                password=parts.password or "",
                db=parts.database,
                unix_socket=parts.query.get("unix_socket"),
                charset="utf8mb4",
                connect_timeout=connect_timeout_s,
                init_command=init_command,
                autocommit=False,
            )
        except pymysql.err.Error as exc:
            raise _wrapped("connect", exc, pymysql.err.Error) from exc
        try:
            cursor = await raw.cursor(_quiet_cursor_class())
            await cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        except pymysql.err.Error as exc:
            raw.close()
            raise _wrapped("SET SESSION TRANSACTION", exc, pymysql.err.Error) from exc
        return cls(raw, cursor)

    def escape(self, value: object) -> str:
        return cast(str, self._raw.escape(value))

    def _render(self, statement: str, params: Sequence[Any]) -> str:
        # What aiomysql's cursor does with parameters: each escaped, then ``%``.
        if not params:
            return statement
        return statement % tuple(self._raw.escape(value) for value in params)

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        sql = self._render(statement, params)
        if self._pending and self._pending_chars + len(sql) > SCRIPT_CHARS:
            await self._send(None)
        self._pending.append(sql)
        self._pending_chars += len(sql) + 1

    async def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        for params in rows:
            await self.execute(statement, params)

    async def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._send(self._render(statement, params))

    async def _send(self, last: str | None) -> list[Row]:
        """The deferred statements and ``last`` as one packet; the last one's rows."""
        import pymysql.err

        statements = self._pending if last is None else [*self._pending, last]
        self._pending, self._pending_chars = [], 0
        if not statements:
            return []
        script = ";".join(statements)
        cursor = self._cursor
        self.round_trips += 1
        try:
            await cursor.execute(script)
            while await cursor.nextset():
                pass
            rows = await cursor.fetchall()
        except pymysql.err.Error as exc:
            raise _wrapped(script, exc, pymysql.err.Error) from exc
        return list(rows)

    async def begin(self) -> None:
        # Autocommit is off: the first statement starts the transaction.
        self._pending, self._pending_chars = [], 0
        self.committing = False

    async def commit(self) -> None:
        self.committing = True
        await self._send("COMMIT")

    async def rollback(self) -> None:
        import pymysql.err

        self._pending, self._pending_chars = [], 0
        try:
            await self._raw.rollback()
        except pymysql.err.Error as exc:
            raise _wrapped("ROLLBACK", exc, pymysql.err.Error) from exc

    async def aclose(self) -> None:
        try:
            await self._raw.ensure_closed()
        except Exception:
            self._raw.close()

    def abort(self) -> None:
        self._raw.close()


class _SqliteConnection:
    """A sqlite3 connection in a worker thread of its own, with deferred statements."""

    mark = "?"

    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self.committing = False
        self.round_trips = 0
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cirno-sqlite-writer")
        self._pending: list[tuple[str, Sequence[Any], bool]] = []

    @classmethod
    async def connect(cls, url: str, busy_timeout_s: float) -> _SqliteConnection:
        path = make_url(url).database or ""
        conn = cls(path, busy_timeout_s)
        try:
            await conn._call(conn._open)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def _open(self) -> None:
        try:
            db = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # BEGIN is ours, so writes can be IMMEDIATE
                check_same_thread=False,  # opened and used in the one worker thread
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            raise _wrapped("connect", exc, sqlite3.Error) from exc
        self._db = db

    def _run(
        self, statements: list[tuple[str, Sequence[Any], bool]], last: tuple[str, Sequence[Any]]
    ) -> list[Row]:
        """In the worker thread: ``statements`` in order, then ``last``; its rows."""
        db = self._db
        if db is None:
            raise _wrapped("run", sqlite3.ProgrammingError("closed"), sqlite3.Error)
        current = last[0]
        try:
            for current, params, many in statements:
                if many:
                    db.executemany(current, params)
                else:
                    db.execute(current, params)
            current = last[0]
            return db.execute(*last).fetchall()
        except sqlite3.Error as exc:
            raise _wrapped(current, exc, sqlite3.Error) from exc

    def escape(self, value: object) -> str:
        raise NotImplementedError("SQLite statements take parameters")

    async def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._pending.append((statement, params, False))

    async def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._pending.append((statement, rows, True))

    async def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        pending, self._pending = self._pending, []
        self.round_trips += 1
        return await self._call(self._run, pending, (statement, params))

    async def begin(self) -> None:
        self._pending = [("BEGIN IMMEDIATE", (), False)]
        self.committing = False

    async def commit(self) -> None:
        self.committing = True
        await self.query("COMMIT")

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise _wrapped("ROLLBACK", exc, sqlite3.Error) from exc

    async def rollback(self) -> None:
        self._pending = []
        await self._call(self._rollback)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def aclose(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    def abort(self) -> None:
        self._executor.submit(self._close)
        self._executor.shutdown(wait=False)


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
        self._conn: _Connection | None = None
        self._opened_at = 0.0
        self._used = False
        self._past_round_trips = 0
        self.connects = 0

    @property
    def round_trips(self) -> int:
        """Statement round trips so far, on every connection this link held."""
        held = self._conn.round_trips if self._conn is not None else 0
        return self._past_round_trips + held

    async def transaction(self, work: Callable[[WriterConnection], Awaitable[T]]) -> T:
        """``work`` in one transaction, committed before this returns.

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
            return await self._attempt(conn, work)
        except Exception as exc:
            if not (reused and connection_lost(exc) and not conn.committing):
                raise
        return await self._attempt(await self._ready(), work)

    async def _attempt(
        self, conn: _Connection, work: Callable[[WriterConnection], Awaitable[T]]
    ) -> T:
        try:
            await conn.begin()
            result = await work(conn)
            await conn.commit()
        except Exception as exc:
            await self._after_failure(conn, exc)
            raise
        except BaseException:
            self._drop_now()
            raise
        self._used = True
        return result

    async def _ready(self) -> _Connection:
        """The held connection, or a new one (also when the held one is too old)."""
        conn = self._conn
        if conn is not None and self._clock() - self._opened_at > self._recycle_s:
            await self.aclose()
            conn = None
        if conn is None:
            conn = await self._open()
        return conn

    async def _open(self) -> _Connection:
        conn: _Connection
        if self._mysql:
            conn = await _MysqlConnection.connect(
                self._url, self._connect_timeout_s, self._init_command
            )
        else:
            conn = await _SqliteConnection.connect(self._url, self._busy_timeout_s)
        self.connects += 1
        self._conn = conn
        self._opened_at = self._clock()
        self._used = False
        return conn

    async def _after_failure(self, conn: _Connection, exc: Exception) -> None:
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
