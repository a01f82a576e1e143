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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from data_plane.storage.messages import aiomysql_patch

T = TypeVar("T")

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
        """``value`` as an SQL literal of this connection (MySQL only); the same
        literal as the driver's parameter escaping, strings cached within a transaction."""


class Connection(WriterConnection, Protocol):
    """A writer connection as ``link.WriterLink`` drives it."""

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


class MysqlConnection:
    """An aiomysql connection (autocommit off, READ COMMITTED) with deferred statements."""

    mark = "%s"

    def __init__(self, raw: Any, cursor: Any) -> None:
        self.committing = False
        self.round_trips = 0
        self._raw = raw
        self._cursor = cursor
        self._pending: list[str] = []
        self._pending_chars = 0
        self._escaped: dict[str, str] = {}

    @classmethod
    async def connect(
        cls, url: str, connect_timeout_s: int, init_command: str | None
    ) -> MysqlConnection:
        import aiomysql
        import pymysql.err

        aiomysql_patch.apply()  # message bodies are bytes parameters
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
        """``value`` as a literal; a string escaped once per transaction (a batch's
        statements repeat its tenant and accounts), the cache dropped at its end."""
        if type(value) is not str:
            return cast(str, self._raw.escape(value))
        found = self._escaped.get(value)
        if found is None:
            found = self._escaped[value] = cast(str, self._raw.escape(value))
        return found

    def _render(self, statement: str, params: Sequence[Any]) -> str:
        # What aiomysql's cursor does with parameters: each escaped, then ``%``.
        if not params:
            return statement
        return statement % tuple([self.escape(value) for value in params])

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
        self._escaped = {}
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


class SqliteConnection:
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
    async def connect(cls, url: str, busy_timeout_s: float) -> SqliteConnection:
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
