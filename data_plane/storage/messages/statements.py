"""The send and ack writers' statements, as driver SQL run with plain tuples (SQLite).

``SendStatements`` is the SQLite dialect and the base of ``statements_mysql``'s MySQL
one: the same statements, in the same order, taking the same locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.delivery import BulkMessage
from data_plane.storage.messages.items import (
    INBOX_COLUMNS,
    MESSAGE_COLUMNS,
    RECEIVED,
    SENT,
    InboxRow,
)
from data_plane.storage.messages.multirow import MultiRowUpsert


class SendStatements:
    """The writers' statements as driver SQL run with plain tuples (SQLite).

    A batch runs about ten statements carrying thousands of values; through SQLAlchemy
    Core most of its CPU went into compiling the statements and processing every
    parameter. These statements are written out once per dialect and run on the
    writer's own connection (``connections.WriterConnection``), whose tuples the driver
    binds as they are (in C for SQLite). Statements, their order and their locks are the
    same as the Core ones were.
    """

    mark = "?"
    for_update = ""
    counter_upsert = MultiRowUpsert(
        "INSERT INTO inbox_seq (tenant, account, seq)",
        3,
        " ON CONFLICT (tenant, account) DO UPDATE SET seq = inbox_seq.seq + excluded.seq",
    )
    """The counters' upsert, several rows a statement (``multirow``)."""

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
        """Insert ``messages`` rows (``MESSAGE_COLUMNS`` order), one executemany."""
        statement = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({self.marks(13)})"
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
            values: list[Any] = []
            for account, n in counts:
                values += (tenant, account, n)
            await self.counter_upsert.run(conn, values)

    def bulk_inbox_insert(self) -> str:
        """INSERT … SELECT of one bulk group message's rows (params: see ``insert_bulk_inbox``)."""
        m = self.mark
        return (
            f"INSERT INTO inbox ({INBOX_COLUMNS}) "
            f"SELECT gm.tenant, gm.account, s.seq - {m}, {m}, "
            f"CASE WHEN gm.account = {m} THEN {SENT} ELSE {RECEIVED} END, {m}, {m}, {m} "
            "FROM group_members gm JOIN inbox_seq s "
            "ON s.tenant = gm.tenant AND s.account = gm.account "
            f"WHERE gm.tenant = {m} AND gm.group_id = {m}"
        )

    async def insert_bulk_inbox(self, conn: WriterConnection, bulk: BulkMessage) -> None:
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

    async def member_counters(
        self, conn: WriterConnection, tenant: str, group_id: str
    ) -> list[int]:
        """The inbox counters of the group's members, in member order (join time, then
        account: the order ``members`` reads them in)."""
        rows = await conn.query(
            "SELECT s.seq FROM group_members gm JOIN inbox_seq s "
            "ON s.tenant = gm.tenant AND s.account = gm.account "
            f"WHERE gm.tenant = {self.mark} AND gm.group_id = {self.mark} "
            "ORDER BY gm.join_time, gm.account",
            (tenant, group_id),
        )
        return [int(seq) for (seq,) in rows]

    async def read_counters(
        self, conn: WriterConnection, tenant: str, accounts: Sequence[str]
    ) -> Sequence[Any]:
        """(account, seq) of the accounts' inbox counters."""
        statement = (
            f"SELECT account, seq FROM inbox_seq WHERE tenant = {self.mark} "
            f"AND account IN ({self.marks(len(accounts))})"
        )
        return await conn.query(statement, (tenant, *accounts))

    async def insert_inbox(self, conn: WriterConnection, rows: list[InboxRow]) -> None:
        """Insert the numbered inbox rows."""
        statement = f"INSERT INTO inbox ({INBOX_COLUMNS}) VALUES ({self.marks(8)})"
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
