"""The send and ack writers' statements on MySQL: values rendered as escaped literals."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.items import (
    INBOX_COLUMNS,
    MESSAGE_COLUMNS,
    InboxRow,
    InboxTail,
)
from data_plane.storage.messages.statements import SendStatements

STATEMENT_CHARS = 1_000_000
"""Rendered multi-row statements are split below this many characters (max_allowed_packet
is 16 MiB by default; a character is at most 4 bytes; one oversized row goes alone)."""


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


class MysqlSendStatements(SendStatements):
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
        """``prefix`` + rendered rows + ``suffix``, split below ``STATEMENT_CHARS``."""
        parts: list[str] = []
        size = 0
        for row in rows:
            if parts and size + len(row) > STATEMENT_CHARS:
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

    async def member_counters(
        self, conn: WriterConnection, tenant: str, group_id: str
    ) -> list[int]:
        """As on SQLite, but as one value (``GROUP_CONCAT``; see :meth:`members` for
        why), read row by row when ``group_concat_max_len`` cut it short."""
        lit = await self._literals(conn)
        rows = await conn.query(
            "SELECT COUNT(*), SUM(LENGTH(s.seq)), "
            "GROUP_CONCAT(s.seq ORDER BY gm.join_time, gm.account SEPARATOR ',') "
            "FROM group_members gm JOIN inbox_seq s "
            "ON s.tenant = gm.tenant AND s.account = gm.account "
            f"WHERE gm.tenant = {lit(tenant)} AND gm.group_id = {lit(group_id)}",
        )
        count, total_chars, packed = rows[0]
        if not count:
            return []
        if isinstance(packed, bytes | bytearray):
            packed = packed.decode("ascii")
        if len(packed) != int(total_chars) + count - 1:
            return await super().member_counters(conn, tenant, group_id)
        return [int(seq) for seq in packed.split(",")]

    async def insert_messages(self, conn: WriterConnection, rows: list[tuple[Any, ...]]) -> None:
        lit = await self._literals(conn)
        await self._insert_rows(
            conn,
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ",
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

    async def insert_inbox(self, conn: WriterConnection, rows: list[InboxRow]) -> None:
        lit = await self._literals(conn)
        tails: dict[InboxTail, str] = {}

        def tail_of(tail: InboxTail) -> str:
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
            f"INSERT INTO inbox ({INBOX_COLUMNS}) VALUES ",
            (f"({lit(t)},{lit(a)},{int(seq)},{tail_of(tail)}" for t, a, seq, tail in rows),
        )
