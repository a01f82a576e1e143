"""SQL ``MessageStore`` (SQLite, MySQL) with group commit, and ``open_message_store``.

Theory of operation:

- Sends (1:1 and group) and acks go through two ``GroupCommitter`` writers. Each batch
  is one transaction that (1) looks up the batch's client message ids already stored,
  (2) locks the groups it writes to (``SELECT … FOR UPDATE``) and reads their members,
  (3) decides every item in batch order (duplicates, ``GroupNotFound``, ``NotAMember``,
  group sequence + 1) and inserts the contents, (4) reserves each touched inbox's next
  sequences with one upsert per tenant that adds the batch's row count to ``inbox_seq``
  (which locks those rows until COMMIT) and reads the results back, then (5) inserts the
  inbox rows, numbered in batch order within each inbox. Statements are batched (one
  multi-row statement or ``executemany``), never one per inbox row. The hot inbox
  counters are locked last, so they are held only for the last statements and the
  commit. Nothing is awaited between a caller and its queue slot, and items are decided
  in queue order, so one sender's pipelined messages keep their order.
- Write diffusion in the database: a large group none of whose members gets any other
  row in the batch is written in bulk. Its members' counters are raised inside the same
  sorted upsert (``INSERT … SELECT`` from ``group_members``), and each of its messages'
  rows is one ``INSERT … SELECT`` joining ``group_members`` with ``inbox_seq``: the
  counter minus the batch's later messages to that group. Those are the numbers row by
  row would give; the member list read under the group row lock is the one these
  statements read (joins and quits take that lock too), and on MySQL at READ COMMITTED
  their reads of ``group_members`` are consistent reads, taking no locks.
- The hot statements are driver SQL run with plain tuples, not SQLAlchemy Core
  (``_SendSql``): on MySQL inbox and counter rows are rendered as literals with each
  distinct value escaped once by the connection's own ``escape``.
- Each writer (sends, acks) holds one raw driver connection across its transactions
  (``sql_writer.WriterLink``): no pool checkout or ping per batch, and statements that
  return no rows travel with the next one that does, or with COMMIT. A 1:1 batch is
  three round trips (duplicate lookup; contents + counters + their read-back; inbox
  rows + COMMIT), two without client message ids. Reads and group changes use the
  engine's pool.
- Lock order is the same in every transaction: group rows, then inbox counters, each
  sorted by (tenant, key); acks lock only read-index rows. Counters stay locked until
  COMMIT, so inbox sequences commit in order with no gaps, across nodes too.
- MySQL runs at READ COMMITTED (no gap locks; every statement reads the latest commit).
  Deadlocks, lock wait timeouts and unique-key races (another node storing the same
  client message id first) roll the batch back and run it again; the retry reads the
  winner's row and answers ``duplicate=True``.
- SQLite has one writer: write transactions start with ``BEGIN IMMEDIATE``; reads run
  in autocommit. WAL mode, ``synchronous=FULL``, a busy timeout.
- Any database or connection failure surfaces as ``MessageStoreUnavailable``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from itertools import groupby
from typing import Any, TypeVar

import anyio
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    event,
    func,
    select,
)
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
from data_plane.storage.group_commit import DEFAULT_LINGER_S, DEFAULT_MAX_BATCH, GroupCommitter
from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages_base import (
    MEMORY_URL,
    Content,
    Direction,
    Group,
    GroupNotFound,
    IndexEntry,
    IndexPage,
    Member,
    MessageStore,
    NotAMember,
    SendResult,
    UnknownMessage,
    check_device,
    check_group_fields,
    check_id,
    check_message,
    first_occurrences,
    unique_members,
)
from data_plane.storage.messages_memory import MemoryMessageStore
from data_plane.storage.sql_schema import (
    chat_groups,
    group_members,
    inbox,
    messages,
    read_index,
)
from data_plane.storage.sql_writer import WriterConnection, WriterLink
from data_plane.storage.urls import async_url, backend_of

T = TypeVar("T")
R = TypeVar("R")

_WRITE_OPTION = "cirno_write"
_ATTEMPTS = 5
_CHUNK = 300
"""Keys per IN list or multi-row statement (SQLite allows 32,766 parameters)."""
_MYSQL_RETRYABLE = frozenset({1205, 1213})  # lock wait timeout, deadlock


@dataclass(frozen=True, slots=True)
class _Send:
    tenant: str
    sender: str
    receiver: str  # '' for a group message
    group_id: str  # '' for a 1:1 message
    type: int
    body: bytes
    extra: str
    client_msg_id: str | None

    @property
    def key(self) -> tuple[str, str, str] | None:
        if self.client_msg_id is None:
            return None
        return (self.tenant, self.sender, self.client_msg_id)


@dataclass(frozen=True, slots=True)
class _Ack:
    tenant: str
    account: str
    device: str
    message_id: int


_SendOutcome = tuple[SendResult, list[str]]

_InboxTail = tuple[int, int, str, str, int]
"""An inbox row after (tenant, account, seq): message_id, direction, account_b, group_id,
send_time. A group message's rows share one tail object."""
_Delivery = tuple[str, str, _InboxTail]
"""(tenant, account, tail): one inbox row still to be numbered."""
_InboxRow = tuple[str, str, int, _InboxTail]
BULK_MIN_MEMBERS = 32
"""Groups this large have their inbox rows written by the database (see ``_plan_deliveries``)."""
OPTIMISTIC_MAX = 32
"""Send batches this small are stored before looking for resends (see ``_write_sends``)."""


@dataclass(frozen=True, slots=True)
class _BulkMessage:
    """A group message whose inbox rows the database writes from ``group_members``.

    Each member's row takes the member's counter (already raised by the whole batch)
    minus ``later``: the number of the batch's messages to this group after this one.
    """

    tenant: str
    group_id: str
    message_id: int
    sender: str
    send_time: int
    later: int


@dataclass(frozen=True, slots=True)
class _DeliveryPlan:
    """A batch's inbox rows: numbered in Python, or in bulk by the database."""

    individual: list[_Delivery]
    bulk: list[_BulkMessage]
    bulk_counts: dict[tuple[str, str], int]
    """(tenant, group_id) → the batch's messages to that bulk group."""


_RECEIVED = int(Direction.RECEIVED)
_SENT = int(Direction.SENT)
_COUNTER_CHUNK = 1000
"""Inbox counters per upsert / read-back (a 1,000-member group message in one go)."""
_MESSAGE_COLUMNS = (
    "message_id, tenant, sender, receiver, group_id, group_seq, type, body, extra, "
    "client_msg_id, send_time"
)
_INBOX_COLUMNS = "tenant, account, seq, message_id, direction, account_b, group_id, send_time"
_STATEMENT_CHARS = 1_000_000
"""Rendered multi-row statements are split below this many characters (max_allowed_packet
is 16 MiB by default; a character is at most 4 bytes; one oversized row goes alone)."""
_GROUP_CONCAT_MAX = 8 * 1024 * 1024
"""Session ``group_concat_max_len``: 10,000 ids of 64 4-byte characters in hex fit."""


class _SendSql:
    """The writers' statements as driver SQL run with plain tuples (SQLite).

    A batch runs about ten statements carrying thousands of values; through SQLAlchemy
    Core most of its CPU went into compiling the statements and processing every
    parameter. These statements are written out once per dialect and run on the
    writer's own connection (``sql_writer.WriterConnection``), whose tuples the driver
    binds as they are (in C for SQLite). Statements, their order and their locks are the
    same as the Core ones were.
    """

    mark = "?"
    for_update = ""
    counter_upsert = (
        "INSERT INTO inbox_seq (tenant, account, seq) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant, account) DO UPDATE SET seq = inbox_seq.seq + excluded.seq"
    )

    def marks(self, count: int, width: int = 1) -> str:
        """``count`` placeholders (``width`` > 1: that many row values of ``width``)."""
        if width == 1:
            return ", ".join([self.mark] * count)
        row = "(" + ", ".join([self.mark] * width) + ")"
        return ", ".join([row] * count)

    async def select_pairs(
        self,
        conn: WriterConnection,
        table: str,
        columns: str,
        tenant: str,
        key: tuple[str, str],
        pairs: Sequence[tuple[Any, Any]],
        tail: str = "",
    ) -> Sequence[Any]:
        """``columns`` (of ``t``) of ``table``'s rows of ``tenant`` whose ``key`` columns
        are one of ``pairs``; ``tail`` ends the statement (ORDER BY, locking).

        SQLite plans ``(a, b) IN (VALUES …)`` as a scan of the tenant's whole index,
        which grows with the table (measured: 53 ms for 250 keys among 300,000 rows).
        Joined with the pairs as the outer loop, each pair is one index lookup (0.5 ms).
        """
        first, second = key
        statement = (
            f"SELECT {columns} FROM (VALUES {self.marks(len(pairs), 2)}) AS k "
            f"CROSS JOIN {table} t ON t.tenant = ? "
            f"AND t.{first} = k.column1 AND t.{second} = k.column2{tail}"
        )
        params = (*(value for pair in pairs for value in pair), tenant)
        return await conn.query(statement, params)

    async def originals(
        self, conn: WriterConnection, tenant: str, pairs: Sequence[tuple[str, str | None]]
    ) -> Sequence[Any]:
        """(sender, client_msg_id, message_id, send_time, group_seq) of stored keys."""
        return await self.select_pairs(
            conn,
            "messages",
            "t.sender, t.client_msg_id, t.message_id, t.send_time, t.group_seq",
            tenant,
            ("sender", "client_msg_id"),
            pairs,
        )

    async def lock_groups(
        self, conn: WriterConnection, tenant: str, group_ids: Sequence[str]
    ) -> Sequence[Any]:
        """(group_id, seq) of the existing groups, their rows locked in sorted order."""
        statement = (
            f"SELECT group_id, seq FROM chat_groups WHERE tenant = {self.mark} "
            f"AND group_id IN ({self.marks(len(group_ids))}) ORDER BY group_id"
            f"{self.for_update}"
        )
        return await conn.query(statement, (tenant, *group_ids))

    async def members(
        self, conn: WriterConnection, tenant: str, group_ids: Sequence[str]
    ) -> Sequence[Any]:
        """(group_id, account) of the groups' members, by group, then join order."""
        statement = (
            f"SELECT group_id, account FROM group_members WHERE tenant = {self.mark} "
            f"AND group_id IN ({self.marks(len(group_ids))}) "
            "ORDER BY group_id, join_time, account"
        )
        return await conn.query(statement, (tenant, *group_ids))

    async def insert_messages(self, conn: WriterConnection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``messages`` rows (``_MESSAGE_COLUMNS`` order), one executemany."""
        statement = f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({self.marks(11)})"
        await conn.executemany(statement, rows)

    async def add_to_counters(
        self,
        conn: WriterConnection,
        tenant: str,
        counts: list[tuple[str, int]],
        groups: list[tuple[str, int]],
    ) -> None:
        """Raise inbox counters (creating missing ones): each (account, n) of ``counts``
        by n, and every member's of each (group_id, n) of ``groups`` by n.

        SQLite has one writer at a time, so the order of the statements does not matter.
        """
        for group_id, n in groups:
            await conn.execute(
                "INSERT INTO inbox_seq (tenant, account, seq) "
                "SELECT tenant, account, ? FROM group_members WHERE tenant = ? AND group_id = ? "
                "ON CONFLICT (tenant, account) DO UPDATE SET seq = inbox_seq.seq + excluded.seq",
                (n, tenant, group_id),
            )
        if counts:
            await conn.executemany(self.counter_upsert, [(tenant, a, n) for a, n in counts])

    def bulk_inbox_insert(self) -> str:
        """INSERT … SELECT of one bulk group message's rows (params: see ``insert_bulk_inbox``)."""
        m = self.mark
        return (
            f"INSERT INTO inbox ({_INBOX_COLUMNS}) "
            f"SELECT gm.tenant, gm.account, s.seq - {m}, {m}, "
            f"CASE WHEN gm.account = {m} THEN {_SENT} ELSE {_RECEIVED} END, {m}, {m}, {m} "
            "FROM group_members gm JOIN inbox_seq s "
            "ON s.tenant = gm.tenant AND s.account = gm.account "
            f"WHERE gm.tenant = {m} AND gm.group_id = {m}"
        )

    async def insert_bulk_inbox(self, conn: WriterConnection, bulk: _BulkMessage) -> None:
        """One inbox row per member of the bulk message's group, numbered from the
        members' counters (already raised by the whole batch)."""
        params = (
            bulk.later,
            bulk.message_id,
            bulk.sender,
            bulk.sender,
            bulk.group_id,
            bulk.send_time,
            bulk.tenant,
            bulk.group_id,
        )
        await conn.execute(self.bulk_inbox_insert(), params)

    async def read_counters(
        self, conn: WriterConnection, tenant: str, accounts: Sequence[str]
    ) -> Sequence[Any]:
        """(account, seq) of the accounts' inbox counters."""
        statement = (
            f"SELECT account, seq FROM inbox_seq WHERE tenant = {self.mark} "
            f"AND account IN ({self.marks(len(accounts))})"
        )
        return await conn.query(statement, (tenant, *accounts))

    async def insert_inbox(self, conn: WriterConnection, rows: list[_InboxRow]) -> None:
        """Insert the numbered inbox rows."""
        statement = f"INSERT INTO inbox ({_INBOX_COLUMNS}) VALUES ({self.marks(8)})"
        await conn.executemany(statement, [(t, a, seq, *tail) for t, a, seq, tail in rows])

    async def store_group_seqs(
        self, conn: WriterConnection, rows: list[tuple[int, str, str]]
    ) -> None:
        """Set each (seq, tenant, group_id)'s group sequence."""
        statement = (
            f"UPDATE chat_groups SET seq = {self.mark} "
            f"WHERE tenant = {self.mark} AND group_id = {self.mark}"
        )
        await conn.executemany(statement, rows)


class _Literals:
    """SQL literals of values for one statement, each distinct string escaped once.

    ``quote`` is the connection's ``escape`` (aiomysql's own parameter escaping, which
    follows the server's NO_BACKSLASH_ESCAPES mode); ints are written out, None is NULL.
    """

    __slots__ = ("_quote", "_strings")

    def __init__(self, quote: Callable[[object], str]) -> None:
        self._quote = quote
        self._strings: dict[str, str] = {}

    def __call__(self, value: object) -> str:
        if type(value) is str:
            found = self._strings.get(value)
            if found is None:
                found = self._strings[value] = self._quote(value)
            return found
        if type(value) is int:
            return str(value)
        if value is None:
            return "NULL"
        return self._quote(value)


class _MysqlSendSql(_SendSql):
    """MySQL: the same statements, their values rendered as literals.

    aiomysql escapes every parameter in Python, one call per value (8 per inbox row,
    11 per message). The send path's values repeat (tenant, senders, a group
    message's whole row tail), so its statements are rendered with each distinct
    string escaped once by the connection's own ``escape`` — the function aiomysql
    itself applies to parameters — into multi-row statements run without parameter
    substitution, as aiomysql's ``executemany`` runs its own multi-row rewrite.
    """

    mark = "%s"
    for_update = " FOR UPDATE"

    @staticmethod
    async def _literals(conn: WriterConnection) -> _Literals:
        return _Literals(conn.escape)

    async def select_pairs(
        self,
        conn: WriterConnection,
        table: str,
        columns: str,
        tenant: str,
        key: tuple[str, str],
        pairs: Sequence[tuple[Any, Any]],
        tail: str = "",
    ) -> Sequence[Any]:
        """As on SQLite; here a row-value IN list is a range scan of the key's index."""
        first, second = key
        statement = (
            f"SELECT {columns} FROM {table} t WHERE t.tenant = %s "
            f"AND (t.{first}, t.{second}) IN ({self.marks(len(pairs), 2)}){tail}"
        )
        params = (tenant, *(value for pair in pairs for value in pair))
        return await conn.query(statement, params)

    async def _insert_rows(
        self, conn: WriterConnection, prefix: str, rows: Iterable[str], suffix: str = ""
    ) -> None:
        """``prefix`` + rendered rows + ``suffix``, split below ``_STATEMENT_CHARS``."""
        parts: list[str] = []
        size = 0
        for row in rows:
            if parts and size + len(row) > _STATEMENT_CHARS:
                await conn.execute(prefix + ",".join(parts) + suffix)
                parts, size = [], 0
            parts.append(row)
            size += len(row) + 1
        if parts:
            await conn.execute(prefix + ",".join(parts) + suffix)

    async def originals(
        self, conn: WriterConnection, tenant: str, pairs: Sequence[tuple[str, str | None]]
    ) -> Sequence[Any]:
        lit = await self._literals(conn)
        keys = ",".join([f"({lit(sender)},{lit(client)})" for sender, client in pairs])
        return await conn.query(
            "SELECT sender, client_msg_id, message_id, send_time, group_seq FROM messages "
            f"WHERE tenant = {lit(tenant)} AND (sender, client_msg_id) IN ({keys})",
        )

    async def members(
        self, conn: WriterConnection, tenant: str, group_ids: Sequence[str]
    ) -> Sequence[Any]:
        """As on SQLite, but one row per group: its members' hex, comma-separated.

        aiomysql parses result rows in Python (a few µs each), so a 1,000-member group
        costs ~1,000 row parses; ``GROUP_CONCAT`` of ``HEX(account)`` (no separator can
        occur inside) returns the same list, in the same order, as one value. The
        length is checked against the group's byte count, so a result cut short by
        ``group_concat_max_len`` is never taken for the member list: that group is read
        row by row instead.
        """
        lit = await self._literals(conn)
        rows = await conn.query(
            "SELECT group_id, COUNT(*), SUM(LENGTH(account)), "
            "GROUP_CONCAT(HEX(account) ORDER BY join_time, account SEPARATOR ',') "
            f"FROM group_members WHERE tenant = {lit(tenant)} "
            f"AND group_id IN ({','.join([lit(g) for g in group_ids])}) "
            "GROUP BY group_id ORDER BY group_id",
        )
        found: list[tuple[str, str]] = []
        for group_id, count, total_bytes, packed in rows:
            if isinstance(packed, bytes | bytearray):
                packed = packed.decode("ascii")
            if len(packed) != 2 * int(total_bytes) + count - 1:
                found.extend(await super().members(conn, tenant, [group_id]))
                continue
            found.extend((group_id, bytes.fromhex(h).decode()) for h in packed.split(","))
        return found

    async def insert_messages(self, conn: WriterConnection, rows: list[tuple[Any, ...]]) -> None:
        lit = await self._literals(conn)
        await self._insert_rows(
            conn,
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ",
            ("(" + ",".join([lit(value) for value in row]) + ")" for row in rows),
        )

    async def add_to_counters(
        self,
        conn: WriterConnection,
        tenant: str,
        counts: list[tuple[str, int]],
        groups: list[tuple[str, int]],
    ) -> None:
        """As on SQLite, but every counter of the tenant in one pass, sorted.

        Other writers run at the same time here, so the counters must be locked in one
        order everywhere: sorted by account. Without bulk groups that is the sorted
        ``counts`` (split into statements in order if very many); with them, one
        ``UNION ALL`` of the groups' members and the accounts, ordered by account
        (bulk accounts are never in ``counts``).
        """
        lit = await self._literals(conn)
        t = lit(tenant)
        upsert = " ON DUPLICATE KEY UPDATE seq = inbox_seq.seq + VALUES(seq)"
        if not groups:
            rows = (f"({t},{lit(a)},{int(n)})" for a, n in counts)
            await self._insert_rows(
                conn, "INSERT INTO inbox_seq (tenant, account, seq) VALUES ", rows, upsert
            )
            return
        parts = [
            f"SELECT tenant, account, {int(n)} AS n FROM group_members "
            f"WHERE tenant = {t} AND group_id = {lit(g)}"
            for g, n in groups
        ]
        parts.extend(f"SELECT {t}, {lit(a)}, {int(n)}" for a, n in counts)
        await conn.execute(
            "INSERT INTO inbox_seq (tenant, account, seq) SELECT u.tenant, u.account, u.n "
            f"FROM ({' UNION ALL '.join(parts)}) u ORDER BY u.account COLLATE utf8mb4_bin" + upsert,
        )

    async def read_counters(
        self, conn: WriterConnection, tenant: str, accounts: Sequence[str]
    ) -> Sequence[Any]:
        lit = await self._literals(conn)
        return await conn.query(
            f"SELECT account, seq FROM inbox_seq WHERE tenant = {lit(tenant)} "
            f"AND account IN ({','.join([lit(a) for a in accounts])})",
        )

    async def insert_inbox(self, conn: WriterConnection, rows: list[_InboxRow]) -> None:
        lit = await self._literals(conn)
        tails: dict[_InboxTail, str] = {}

        def tail_of(tail: _InboxTail) -> str:
            found = tails.get(tail)
            if found is None:
                message_id, direction, account_b, group_id, send_time = tail
                found = tails[tail] = (
                    f"{int(message_id)},{int(direction)},{lit(account_b)},"
                    f"{lit(group_id)},{int(send_time)})"
                )
            return found

        await self._insert_rows(
            conn,
            f"INSERT INTO inbox ({_INBOX_COLUMNS}) VALUES ",
            (f"({lit(t)},{lit(a)},{int(seq)},{tail_of(tail)}" for t, a, seq, tail in rows),
        )


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_tenant(keys: Iterable[tuple[str, T]]) -> Iterator[tuple[str, list[T]]]:
    """Sorted keys grouped by tenant: (tenant, [rest of key, …]) in lock order."""
    for tenant, group in groupby(sorted(set(keys)), key=lambda key: key[0]):
        yield tenant, [key[1] for key in group]


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_RETRYABLE
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


async def _write_with(
    write: Callable[[WriterConnection, Sequence[T]], Awaitable[R]],
    items: Sequence[T],
    conn: WriterConnection,
) -> R:
    """``write(conn, items)`` with the connection last, for ``partial``."""
    return await write(conn, items)


def _connection_failure(exc: Exception) -> bool:
    """Whether ``exc`` means the database is unreachable (not one bad statement)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, OSError | SQLAlchemyError)


@contextmanager
def _unavailable_on_db_error() -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise MessageStoreUnavailable(f"message store failed: {exc!r}") from exc


def create_message_engine(
    url: str, *, pool_size: int = 10, busy_timeout_s: float = 5.0, connect_timeout_s: int = 5
) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite:///…`` or ``mysql://…``) set up for the store."""
    if backend_of(url) == "sqlite":
        engine = create_async_engine(async_url(url), connect_args={"timeout": busy_timeout_s})
        _configure_sqlite(engine, busy_timeout_s)
        return engine
    _repair_aiomysql_bytes()
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
            # Room for a 10,000-member group's member list in one GROUP_CONCAT.
            "init_command": f"SET SESSION group_concat_max_len = {_GROUP_CONCAT_MAX}",
        },
    )


def _repair_aiomysql_bytes() -> None:
    """Give aiomysql back the bytes escaper that PyMySQL 1.2.3+ replaced by a string.

    aiomysql 0.3.2 calls ``pymysql.converters.escape_bytes_prefixed`` for every bytes
    parameter; PyMySQL 1.2.3 turned that name into a placeholder string, so message
    bodies fail with "'str' object is not callable" (aio-libs/aiomysql#1080, fix in
    #1081). This sets the one-line function the fix defines; it does nothing once
    aiomysql or PyMySQL is fixed (or PyMySQL is pinned below 1.2).
    """
    import aiomysql.connection

    if not callable(getattr(aiomysql.connection, "escape_bytes_prefixed", None)):

        def escape_bytes_prefixed(value: bytes) -> str:
            return f"_binary X'{value.hex()}'"

        aiomysql.connection.escape_bytes_prefixed = escape_bytes_prefixed


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
        if conn.get_execution_options().get(_WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlMessageStore:
    """A ``MessageStore`` on SQLite or MySQL.

    ``run`` must be running (in a task group) while the store is used; use
    ``open_sql_message_store`` or ``open_message_store``, which also close it.
    ``flushes`` counts send transactions (group commits), ``ack_flushes`` ack ones,
    ``retries`` the write transactions run again after a transient conflict.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        node_id: int,
        linger_s: float = DEFAULT_LINGER_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        ids: SnowflakeIds | None = None,
        busy_timeout_s: float = 5.0,
        connect_timeout_s: int = 5,
    ) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})
        self._mysql = engine.dialect.name in ("mysql", "mariadb")
        self._send_sql = _MysqlSendSql() if self._mysql else _SendSql()
        # Each writer holds a connection of its own (see ``sql_writer``); the engine's
        # pool serves the reads and the group writes, which run concurrently.
        url = engine.url.render_as_string(hide_password=False)
        links = partial(
            WriterLink,
            url,
            connect_timeout_s=connect_timeout_s,
            busy_timeout_s=busy_timeout_s,
            # Room for a 10,000-member group's member list in one GROUP_CONCAT.
            mysql_init_command=f"SET SESSION group_concat_max_len = {_GROUP_CONCAT_MAX}",
        )
        self._send_link = links()
        self._ack_link = links()
        self._ids = ids if ids is not None else SnowflakeIds(node_id)
        self._sends: GroupCommitter[_Send, _SendOutcome] = GroupCommitter(
            self._flush_sends, linger_s=linger_s, max_batch=max_batch
        )
        self._acks: GroupCommitter[_Ack, bool] = GroupCommitter(
            self._flush_acks, linger_s=linger_s, max_batch=max_batch
        )
        self._closed = False
        self.bulk_min_members = BULK_MIN_MEMBERS
        """Groups at least this large are written in bulk when they can be (tests lower it)."""
        self.optimistic_max = OPTIMISTIC_MAX
        """Batches this small skip the duplicate lookup unless a resend is among them."""
        self.retries = 0
        """Write transactions run again after a deadlock, lock timeout or key race."""

    @property
    def flushes(self) -> int:
        """Send batches flushed so far (one transaction each, retries aside)."""
        return self._sends.flushes

    @property
    def ack_flushes(self) -> int:
        """Ack batches flushed so far."""
        return self._acks.flushes

    async def run(self) -> None:
        """Run the send and ack writers until ``aclose``."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sends.run)
            tg.start_soon(self._acks.run)

    async def aclose(self) -> None:
        """Let the writers flush what is queued, then release every connection."""
        if self._closed:
            return
        self._closed = True
        self._sends.close()
        self._acks.close()
        await self._sends.wait_stopped()
        await self._acks.wait_stopped()
        await self._send_link.aclose()
        await self._ack_link.aclose()
        await self._engine.dispose()

    # -- transactions ---------------------------------------------------------------

    async def _transact(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in a write transaction of the engine, again on a transient conflict."""

        async def attempt() -> T:
            async with self._write_engine.begin() as conn:
                return await work(conn)

        return await self._retrying(attempt)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, again (up to ``_ATTEMPTS`` in all) after a transient conflict."""
        for number in range(_ATTEMPTS):
            try:
                return await attempt()
            except DBAPIError as exc:
                if number + 1 == _ATTEMPTS or not _retryable(exc):
                    raise
                self.retries += 1
            await anyio.sleep(random.uniform(0.001, 0.005) * (number + 1))
        raise AssertionError("unreachable")

    async def _flush_isolating(
        self,
        items: Sequence[T],
        write: Callable[[WriterConnection, Sequence[T]], Awaitable[list[R | BaseException]]],
        link: WriterLink,
    ) -> list[R | BaseException]:
        """One transaction on the writer's ``link`` for the batch; if an item poisons
        it, one per item.

        A connection failure fails the whole batch (the writer answers every caller
        ``MessageStoreUnavailable``). Any other failure — a value the database refuses,
        a key that keeps conflicting — is retried item by item in batch order, so only
        the offending item's caller gets ``MessageStoreUnavailable``.
        """
        try:
            return await self._retrying(
                partial(link.transaction, partial(_write_with, write, items))
            )
        except Exception as exc:
            if len(items) == 1 or _connection_failure(exc):
                raise
        outcomes: list[R | BaseException] = []
        for item in items:
            try:
                one = partial(link.transaction, partial(_write_with, write, (item,)))
                outcomes.extend(await self._retrying(one))
            except Exception as exc:
                if _connection_failure(exc):
                    raise
                error = MessageStoreUnavailable(f"not stored: {exc!r}")
                error.__cause__ = exc
                outcomes.append(error)
        return outcomes

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """A write outside the batchers, with database errors as unavailability."""
        self._check_open()
        with _unavailable_on_db_error():
            return await self._transact(work)

    async def _read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        self._check_open()
        with _unavailable_on_db_error():
            async with self._engine.connect() as conn:
                return await work(conn)

    def _check_open(self) -> None:
        if self._closed:
            raise MessageStoreUnavailable("the message store is closed")

    # -- sends ----------------------------------------------------------------------

    async def send_user_message(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> SendResult:
        """See ``MessageStore.send_user_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("receiver", receiver)
        item = _Send(tenant, sender, receiver, "", type, bytes(body), extra, client_msg_id)
        result, _ = await self._sends.submit(item)
        return result

    async def send_group_message(
        self,
        tenant: str,
        sender: str,
        group_id: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> tuple[SendResult, list[str]]:
        """See ``MessageStore.send_group_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("group_id", group_id)
        item = _Send(tenant, sender, "", group_id, type, bytes(body), extra, client_msg_id)
        return await self._sends.submit(item)

    async def _flush_sends(self, items: Sequence[_Send]) -> list[_SendOutcome | BaseException]:
        return await self._flush_isolating(items, self._write_sends, self._send_link)

    async def _write_sends(
        self, conn: WriterConnection, items: Sequence[_Send]
    ) -> list[_SendOutcome | BaseException]:
        """Store a batch; small 1:1 batches first optimistically, without the lookup.

        A resend is rare, and in a small batch the duplicate lookup is a whole round
        trip of its own. So a 1:1 batch of at most ``optimistic_max`` items is first
        stored as if none of its client message ids were stored yet, after a
        savepoint: a resend then breaks the ``messages`` unique key in the first packet
        (contents, counters, their read-back: the read-back is a query, so the packet
        is sent inside this call, and the statements after the failing one never run),
        the work is rolled back to the savepoint, and the batch is stored again the
        usual way, lookup first, in the same transaction. Nothing is answered before
        that, so a resend still gets its original id and nothing is stored twice.
        Batches with group messages always look up first: their first queries lock the
        groups, and a batch of bulk groups may have no query after the contents.
        """
        if not any(item.client_msg_id for item in items):
            return await self._store_sends(conn, items, {})
        if len(items) <= self.optimistic_max and not any(item.group_id for item in items):
            await conn.execute("SAVEPOINT cirno_fresh")
            try:
                return await self._store_sends(conn, items, {})
            except IntegrityError:
                await conn.execute("ROLLBACK TO SAVEPOINT cirno_fresh")
        return await self._store_sends(conn, items, await self._originals(conn, items))

    async def _store_sends(
        self,
        conn: WriterConnection,
        items: Sequence[_Send],
        originals: dict[tuple[str, str, str], SendResult],
    ) -> list[_SendOutcome | BaseException]:
        """Decide every item in batch order (``originals``: stored sends among the
        batch's keys) and write contents, counters and inbox rows."""
        sql = self._send_sql
        wanted = {(i.tenant, i.group_id) for i in items if i.group_id and i.key not in originals}
        group_seqs, group_accounts = await self._lock_groups(conn, wanted)
        group_sets = {group: set(accounts) for group, accounts in group_accounts.items()}
        outcomes: list[_SendOutcome | BaseException] = []
        in_batch: dict[tuple[str, str, str], SendResult] = {}
        message_rows: list[tuple[Any, ...]] = []
        stored: list[tuple[_Send, int, int]] = []
        user_sends: list[tuple[int, _Send, SendResult]] = []
        for item in items:
            key = item.key
            if key is not None and key in originals:
                outcomes.append((originals[key], []))
                continue
            if key is not None and key in in_batch:
                outcomes.append((replace(in_batch[key], duplicate=True), []))
                continue
            if item.group_id:
                group = (item.tenant, item.group_id)
                if group not in group_seqs:
                    outcomes.append(GroupNotFound(f"group {item.group_id!r} does not exist"))
                    continue
                if item.sender not in group_sets[group]:
                    outcomes.append(
                        NotAMember(f"{item.sender!r} is not a member of group {item.group_id!r}")
                    )
                    continue
                group_seqs[group] += 1
                seq = group_seqs[group]
            else:
                seq = 0
            message_id = self._ids.next_id()
            send_time = SnowflakeIds.time_of(message_id)
            result = SendResult(message_id, send_time, duplicate=False, seq=seq)
            if key is not None:
                in_batch[key] = result
            message_rows.append(_message_row(item, message_id, send_time, seq))
            stored.append((item, message_id, send_time))
            if item.group_id:
                outcomes.append((result, list(group_accounts[(item.tenant, item.group_id)])))
            else:
                user_sends.append((len(outcomes), item, result))
                outcomes.append((result, []))
        if message_rows:
            plan = _plan_deliveries(stored, group_accounts, group_sets, self.bulk_min_members)
            await sql.insert_messages(conn, message_rows)
            user_seqs = await self._insert_inbox_rows(conn, plan)
            await self._store_group_seqs(conn, group_seqs, wanted)
            for index, item, result in user_sends:
                # The 1:1 rows' sequences, so pushes can tell each inbox where it stands
                # (built directly: dataclasses.replace costs microseconds per message).
                message_id = result.message_id
                outcomes[index] = (
                    SendResult(
                        message_id,
                        result.send_time,
                        False,
                        0,
                        user_seqs[(item.tenant, item.sender, message_id)],
                        user_seqs[(item.tenant, item.receiver, message_id)],
                    ),
                    [],
                )
        return outcomes

    async def _originals(
        self, conn: WriterConnection, items: Sequence[_Send]
    ) -> dict[tuple[str, str, str], SendResult]:
        """Already stored sends among the batch's (tenant, sender, client_msg_id) keys."""
        keys = {(i.tenant, (i.sender, i.client_msg_id)) for i in items if i.client_msg_id}
        found: dict[tuple[str, str, str], SendResult] = {}
        for tenant, pairs in _by_tenant(keys):
            for chunk in _chunks(pairs):
                rows = await self._send_sql.originals(conn, tenant, chunk)
                for sender, client_msg_id, message_id, send_time, group_seq in rows:
                    found[(tenant, sender, client_msg_id)] = SendResult(
                        message_id, send_time, duplicate=True, seq=group_seq
                    )
        return found

    async def _lock_groups(
        self, conn: WriterConnection, wanted: set[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], list[str]]]:
        """Lock the groups' rows (sorted); their sequences and members by join order."""
        sql = self._send_sql
        seqs: dict[tuple[str, str], int] = {}
        accounts: dict[tuple[str, str], list[str]] = {}
        for tenant, group_ids in _by_tenant(wanted):
            for chunk in _chunks(group_ids):
                for group_id, seq in await sql.lock_groups(conn, tenant, chunk):
                    seqs[(tenant, group_id)] = seq
                    accounts[(tenant, group_id)] = []
            found = [g for t, g in seqs if t == tenant]
            for chunk in _chunks(found):
                for group_id, account in await sql.members(conn, tenant, chunk):
                    accounts[(tenant, group_id)].append(account)
        return seqs, accounts

    async def _store_group_seqs(
        self,
        conn: WriterConnection,
        seqs: dict[tuple[str, str], int],
        wanted: set[tuple[str, str]],
    ) -> None:
        rows = [
            (seq, tenant, group_id)
            for (tenant, group_id), seq in sorted(seqs.items())
            if (tenant, group_id) in wanted
        ]
        if rows:
            await self._send_sql.store_group_seqs(conn, rows)

    async def _insert_inbox_rows(
        self, conn: WriterConnection, plan: _DeliveryPlan
    ) -> dict[tuple[str, str, int], int]:
        """One inbox row per delivery, numbered in batch order within each inbox.

        Counters first (one sorted pass), then the rows numbered in Python, then the
        bulk group messages' rows, numbered by the database from the counters. Returns
        the sequence of each 1:1 row by (tenant, account, message_id).
        """
        counts = Counter((tenant, account) for tenant, account, _ in plan.individual)
        next_seq = await self._reserve_inbox_seqs(conn, counts, plan.bulk_counts)
        rows: list[_InboxRow] = []
        user_seqs: dict[tuple[str, str, int], int] = {}
        for tenant, account, tail in plan.individual:
            key = (tenant, account)
            seq = next_seq[key]
            next_seq[key] = seq + 1
            rows.append((tenant, account, seq, tail))
            if not tail[3]:
                user_seqs[(tenant, account, tail[0])] = seq
        if rows:
            await self._send_sql.insert_inbox(conn, rows)
        for bulk in plan.bulk:
            await self._send_sql.insert_bulk_inbox(conn, bulk)
        return user_seqs

    async def _reserve_inbox_seqs(
        self,
        conn: WriterConnection,
        counts: Counter[tuple[str, str]],
        bulk_counts: dict[tuple[str, str], int],
    ) -> dict[tuple[str, str], int]:
        """Add the batch's rows to the inbox counters (locking them); first seq of each.

        ``counts`` are per account, ``bulk_counts`` per group (to every member). Per
        tenant in order, every counter is locked in one pass sorted by account. Only
        the ``counts`` accounts' counters are read back.
        """
        sql = self._send_sql
        accounts_of = dict(_by_tenant(counts))
        groups_of = dict(_by_tenant(bulk_counts))
        first: dict[tuple[str, str], int] = {}
        for tenant in sorted(accounts_of.keys() | groups_of.keys()):
            accounts = accounts_of.get(tenant, [])
            await sql.add_to_counters(
                conn,
                tenant,
                [(a, counts[(tenant, a)]) for a in accounts],
                [(g, bulk_counts[(tenant, g)]) for g in groups_of.get(tenant, [])],
            )
            for chunk in _chunks(accounts, _COUNTER_CHUNK):
                for account, last in await sql.read_counters(conn, tenant, chunk):
                    first[(tenant, account)] = last - counts[(tenant, account)] + 1
        return first

    @staticmethod
    async def _insert_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, 1000):
            await conn.execute(table.insert(), list(chunk))

    # -- read index -----------------------------------------------------------------

    async def ack(self, tenant: str, account: str, device: str, message_id: int) -> bool:
        """See ``MessageStore.ack``."""
        check_device(device)
        return await self._acks.submit(_Ack(tenant, account, device, message_id))

    async def _flush_acks(self, items: Sequence[_Ack]) -> list[bool | BaseException]:
        return await self._flush_isolating(items, self._write_acks, self._ack_link)

    async def _write_acks(
        self, conn: WriterConnection, items: Sequence[_Ack]
    ) -> list[bool | BaseException]:
        seqs: dict[tuple[str, str, int], int] = {}
        for tenant, pairs in _by_tenant((i.tenant, (i.account, i.message_id)) for i in items):
            for chunk in _chunks(pairs):
                rows = await self._send_sql.select_pairs(
                    conn,
                    "inbox",
                    "t.account, t.message_id, t.seq",
                    tenant,
                    ("account", "message_id"),
                    chunk,
                )
                for account, message_id, seq in rows:
                    seqs[(tenant, account, message_id)] = seq
        known = [i for i in items if (i.tenant, i.account, i.message_id) in seqs]
        current: dict[tuple[str, str, str], int] = {}
        for tenant, devices in _by_tenant((i.tenant, (i.account, i.device)) for i in known):
            for part in _chunks(devices):
                rows = await self._send_sql.select_pairs(
                    conn,
                    "read_index",
                    "t.account, t.device, t.seq",
                    tenant,
                    ("account", "device"),
                    part,
                    " ORDER BY t.account, t.device" + self._send_sql.for_update,
                )
                for account, device, seq in rows:
                    current[(tenant, account, device)] = seq
        existing = set(current)
        moved_to: dict[tuple[str, str, str], tuple[int, int]] = {}
        outcomes: list[bool | BaseException] = []
        for item in items:
            seq = seqs.get((item.tenant, item.account, item.message_id))
            if seq is None:
                outcomes.append(
                    UnknownMessage(f"message {item.message_id} is not in {item.account!r}'s inbox")
                )
                continue
            key = (item.tenant, item.account, item.device)
            moved = key not in current or seq > current[key]
            if moved:
                current[key] = seq
                moved_to[key] = (item.message_id, seq)
            outcomes.append(moved)
        await self._store_read_indexes(conn, moved_to, existing)
        return outcomes

    async def _store_read_indexes(
        self,
        conn: WriterConnection,
        moved_to: dict[tuple[str, str, str], tuple[int, int]],
        existing: set[tuple[str, str, str]],
    ) -> None:
        """Move the read indexes that moved: an update per existing row (locked above),
        one multi-row insert of the new ones."""
        m = self._send_sql.mark
        changed = sorted(moved_to.items())
        updates = [(mid, s, t, a, d) for (t, a, d), (mid, s) in changed if (t, a, d) in existing]
        inserts = [
            (t, a, d, mid, s) for (t, a, d), (mid, s) in changed if (t, a, d) not in existing
        ]
        if updates:
            await conn.executemany(
                f"UPDATE read_index SET message_id = {m}, seq = {m} "
                f"WHERE tenant = {m} AND account = {m} AND device = {m}",
                updates,
            )
        for chunk in _chunks(inserts):
            # A concurrent first ack of the same device fails this with a unique-key
            # error; the batch then runs again and sees that row.
            await conn.execute(
                "INSERT INTO read_index (tenant, account, device, message_id, seq) "
                f"VALUES {self._send_sql.marks(len(chunk), 5)}",
                [value for row in chunk for value in row],
            )

    async def list_index(
        self, tenant: str, account: str, device: str, after_message_id: int, limit: int
    ) -> IndexPage:
        """See ``MessageStore.list_index``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")

        anchor: ColumnElement[int]
        if after_message_id:
            anchor = _inbox_seq_of(tenant, account, after_message_id).scalar_subquery()
        else:
            anchor = func.coalesce(
                select(read_index.c.seq)
                .where(
                    read_index.c.tenant == tenant,
                    read_index.c.account == account,
                    read_index.c.device == device,
                )
                .scalar_subquery(),
                0,
            )
        # One statement: an unknown anchor compares as NULL and selects nothing.
        page = (
            select(
                inbox.c.message_id,
                inbox.c.direction,
                inbox.c.send_time,
                inbox.c.account_b,
                inbox.c.group_id,
                inbox.c.seq,
            )
            .where(inbox.c.tenant == tenant, inbox.c.account == account, inbox.c.seq > anchor)
            .order_by(inbox.c.seq)
            .limit(limit + 1)
        )

        async def work(conn: AsyncConnection) -> IndexPage:
            rows = (await conn.execute(page)).fetchall()
            if not rows and after_message_id:
                known = await conn.scalar(_inbox_seq_of(tenant, account, after_message_id))
                if known is None:
                    raise UnknownMessage(
                        f"message {after_message_id} is not in the inbox of {account!r}"
                    )
            entries = [IndexEntry(m, Direction(d), t, b, g, s) for m, d, t, b, g, s in rows]
            return IndexPage(entries[:limit], has_more=len(entries) > limit)

        return await self._read(work)

    async def get_contents(
        self, tenant: str, account: str, message_ids: Sequence[int]
    ) -> list[Content]:
        """See ``MessageStore.get_contents``."""
        wanted = first_occurrences(message_ids)

        async def work(conn: AsyncConnection) -> list[Content]:
            found: dict[int, Content] = {}
            joined = inbox.join(
                messages,
                and_(messages.c.message_id == inbox.c.message_id, messages.c.tenant == tenant),
            )
            for chunk in _chunks(wanted):
                rows = await conn.execute(
                    select(
                        messages.c.message_id, messages.c.type, messages.c.body, messages.c.extra
                    )
                    .select_from(joined)
                    .where(
                        inbox.c.tenant == tenant,
                        inbox.c.account == account,
                        inbox.c.message_id.in_(chunk),
                    )
                )
                for message_id, type_, body, extra in rows:
                    found[message_id] = Content(message_id, type_, bytes(body), extra)
            return [found[m] for m in wanted if m in found]

        if not wanted:
            return []
        return await self._read(work)

    # -- groups ---------------------------------------------------------------------

    async def create_group(
        self,
        tenant: str,
        owner: str,
        name: str,
        avatar: str,
        introduction: str,
        members: Sequence[str],
    ) -> Group:
        """See ``MessageStore.create_group``."""
        check_id("tenant", tenant)
        check_id("owner", owner)
        check_group_fields(name, avatar, introduction)
        accounts = unique_members(owner, members)
        snowflake = self._ids.next_id()
        group_id, created_at = str(snowflake), SnowflakeIds.time_of(snowflake)
        member_list = sorted(
            (Member(a, "", "", created_at) for a in accounts), key=lambda m: m.account
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                chat_groups.insert().values(
                    tenant=tenant,
                    group_id=group_id,
                    name=name,
                    avatar=avatar,
                    introduction=introduction,
                    owner=owner,
                    created_at=created_at,
                    seq=0,
                )
            )
            rows = [_member_row(tenant, group_id, m) for m in member_list]
            await self._insert_rows(conn, group_members, rows)

        await self._write(work)
        return Group(group_id, name, avatar, introduction, owner, created_at, member_list)

    async def _lock_group(self, conn: AsyncConnection, tenant: str, group_id: str) -> None:
        found = await conn.scalar(
            select(chat_groups.c.seq)
            .where(chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id)
            .with_for_update()
        )
        if found is None:
            raise GroupNotFound(f"group {group_id!r} does not exist")

    async def join_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.join_group``."""
        check_id("account", account)

        async def work(conn: AsyncConnection) -> bool:
            # The group row lock orders joins with the group's messages.
            await self._lock_group(conn, tenant, group_id)
            if await self._member_exists(conn, tenant, group_id, account):
                return False
            member = Member(account, "", "", self._ids.now_ms())
            await conn.execute(group_members.insert(), [_member_row(tenant, group_id, member)])
            return True

        return await self._write(work)

    async def quit_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.quit_group``."""

        async def work(conn: AsyncConnection) -> bool:
            await self._lock_group(conn, tenant, group_id)
            result = await conn.execute(
                group_members.delete().where(
                    group_members.c.tenant == tenant,
                    group_members.c.group_id == group_id,
                    group_members.c.account == account,
                )
            )
            return result.rowcount > 0

        return await self._write(work)

    async def get_group(self, tenant: str, group_id: str) -> Group:
        """See ``MessageStore.get_group``."""

        async def work(conn: AsyncConnection) -> Group:
            row = (
                await conn.execute(
                    select(
                        chat_groups.c.name,
                        chat_groups.c.avatar,
                        chat_groups.c.introduction,
                        chat_groups.c.owner,
                        chat_groups.c.created_at,
                    ).where(chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id)
                )
            ).first()
            if row is None:
                raise GroupNotFound(f"group {group_id!r} does not exist")
            name, avatar, introduction, owner, created_at = row
            members = await self._members(conn, tenant, group_id)
            return Group(group_id, name, avatar, introduction, owner, created_at, members)

        return await self._read(work)

    async def members(self, tenant: str, group_id: str) -> list[Member]:
        """See ``MessageStore.members``."""

        async def work(conn: AsyncConnection) -> list[Member]:
            exists = await conn.scalar(
                select(chat_groups.c.seq).where(
                    chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id
                )
            )
            if exists is None:
                raise GroupNotFound(f"group {group_id!r} does not exist")
            return await self._members(conn, tenant, group_id)

        return await self._read(work)

    async def is_member(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.is_member``."""

        async def work(conn: AsyncConnection) -> bool:
            return await self._member_exists(conn, tenant, group_id, account)

        return await self._read(work)

    @staticmethod
    async def _members(conn: AsyncConnection, tenant: str, group_id: str) -> list[Member]:
        rows = await conn.execute(
            select(
                group_members.c.account,
                group_members.c.alias,
                group_members.c.avatar,
                group_members.c.join_time,
            )
            .where(group_members.c.tenant == tenant, group_members.c.group_id == group_id)
            .order_by(group_members.c.join_time, group_members.c.account)
        )
        return [Member(a, alias, avatar, joined) for a, alias, avatar, joined in rows]

    @staticmethod
    async def _member_exists(
        conn: AsyncConnection, tenant: str, group_id: str, account: str
    ) -> bool:
        found = await conn.scalar(
            select(group_members.c.join_time).where(
                group_members.c.tenant == tenant,
                group_members.c.group_id == group_id,
                group_members.c.account == account,
            )
        )
        return found is not None


def _inbox_seq_of(tenant: str, account: str, message_id: int) -> Select[tuple[int]]:
    return select(inbox.c.seq).where(
        inbox.c.tenant == tenant, inbox.c.account == account, inbox.c.message_id == message_id
    )


def _message_row(item: _Send, message_id: int, send_time: int, group_seq: int) -> tuple[Any, ...]:
    """A ``messages`` row in ``_MESSAGE_COLUMNS`` order."""
    return (
        message_id,
        item.tenant,
        item.sender,
        item.receiver,
        item.group_id,
        group_seq,
        item.type,
        item.body,
        item.extra,
        item.client_msg_id,
        send_time,
    )


def _plan_deliveries(
    stored: list[tuple[_Send, int, int]],
    group_accounts: dict[tuple[str, str], list[str]],
    group_sets: dict[tuple[str, str], set[str]],
    bulk_min_members: int,
) -> _DeliveryPlan:
    """Which of the batch's inbox rows the database writes in bulk, and the others.

    A group goes in bulk when it has at least ``bulk_min_members`` members and none
    of them gets any other row in this batch (no 1:1 message, no other group's). Then
    every member gets exactly the batch's messages to that group, so one count per
    group raises all their counters and each message's rows are the counters minus
    the messages after it: the same numbers, in the same batch order, as row by row.
    ``stored`` is (item, message_id, send_time) of the stored sends, in batch order.
    """
    per_group = Counter((i.tenant, i.group_id) for i, _, _ in stored if i.group_id)
    big = [g for g in per_group if len(group_accounts[g]) >= bulk_min_members]
    bulk_groups = _exclusive_groups(stored, big, group_sets) if big else set()
    remaining = {g: per_group[g] for g in bulk_groups}
    individual: list[_Delivery] = []
    bulk: list[_BulkMessage] = []
    for item, message_id, send_time in stored:
        group = (item.tenant, item.group_id)
        if not item.group_id:
            _add_user_deliveries(individual, item, message_id, send_time)
        elif group in bulk_groups:
            remaining[group] -= 1
            bulk.append(
                _BulkMessage(
                    item.tenant, item.group_id, message_id, item.sender, send_time, remaining[group]
                )
            )
        else:
            _add_group_deliveries(individual, item, group_accounts[group], message_id, send_time)
    return _DeliveryPlan(individual, bulk, {g: per_group[g] for g in bulk_groups})


def _exclusive_groups(
    stored: list[tuple[_Send, int, int]],
    candidates: list[tuple[str, str]],
    group_sets: dict[tuple[str, str], set[str]],
) -> set[tuple[str, str]]:
    """The candidate groups none of whose members gets a row from anything else."""
    user_accounts: dict[str, set[str]] = {}
    groups_of: dict[str, set[str]] = {}
    for item, _, _ in stored:
        if item.group_id:
            groups_of.setdefault(item.tenant, set()).add(item.group_id)
        else:
            user_accounts.setdefault(item.tenant, set()).update((item.sender, item.receiver))
    exclusive: set[tuple[str, str]] = set()
    for tenant, group_id in candidates:
        members = group_sets[(tenant, group_id)]
        if not members.isdisjoint(user_accounts.get(tenant, ())):
            continue
        others = (g for g in groups_of[tenant] if g != group_id)
        if all(members.isdisjoint(group_sets[(tenant, g)]) for g in others):
            exclusive.add((tenant, group_id))
    return exclusive


def _add_user_deliveries(
    deliveries: list[_Delivery], item: _Send, message_id: int, send_time: int
) -> None:
    """The receiver's inbox row first, then the sender's (one row if they are the same)."""
    if item.receiver != item.sender:
        received = (message_id, _RECEIVED, item.sender, "", send_time)
        deliveries.append((item.tenant, item.receiver, received))
    deliveries.append((item.tenant, item.sender, (message_id, _SENT, item.receiver, "", send_time)))


def _add_group_deliveries(
    deliveries: list[_Delivery],
    item: _Send,
    accounts: list[str],
    message_id: int,
    send_time: int,
) -> None:
    """One inbox row per member in join order; all but the sender's share one tail."""
    tenant, sender = item.tenant, item.sender
    received = (message_id, _RECEIVED, sender, item.group_id, send_time)
    sent = (message_id, _SENT, sender, item.group_id, send_time)
    deliveries.extend((tenant, a, sent if a == sender else received) for a in accounts)


def _member_row(tenant: str, group_id: str, member: Member) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "group_id": group_id,
        "account": member.account,
        "alias": member.alias,
        "avatar": member.avatar,
        "join_time": member.join_time,
    }


@asynccontextmanager
async def open_sql_message_store(
    url: str,
    *,
    node_id: int,
    linger_s: float = DEFAULT_LINGER_S,
    max_batch: int = DEFAULT_MAX_BATCH,
    pool_size: int = 10,
) -> AsyncIterator[SqlMessageStore]:
    """A ``SqlMessageStore`` on ``url`` whose writers run for the life of the context.

    The tables must exist (``alembic upgrade head``, or ``metadata.create_all`` in
    tests). Connections are opened lazily: an unreachable database shows up as
    ``MessageStoreUnavailable`` from the operations, not here.
    """
    store = SqlMessageStore(
        create_message_engine(url, pool_size=pool_size),
        node_id=node_id,
        linger_s=linger_s,
        max_batch=max_batch,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.run)
            try:
                yield store
            finally:
                with anyio.CancelScope(shield=True):
                    await store.aclose()
    except BaseExceptionGroup as group:
        # The task group wraps the body's own exception; give the caller that one back.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise


@asynccontextmanager
async def open_message_store(
    url: str | None,
    *,
    node_id: int,
    linger_s: float = DEFAULT_LINGER_S,
    max_batch: int = DEFAULT_MAX_BATCH,
    pool_size: int = 10,
) -> AsyncIterator[MessageStore]:
    """The message store for ``url``: None or ``memory://`` → memory, else SQL."""
    if url is None or url == MEMORY_URL:
        memory = MemoryMessageStore(node_id=node_id)
        try:
            yield memory
        finally:
            await memory.aclose()
        return
    async with open_sql_message_store(
        url, node_id=node_id, linger_s=linger_s, max_batch=max_batch, pool_size=pool_size
    ) as store:
        yield store
