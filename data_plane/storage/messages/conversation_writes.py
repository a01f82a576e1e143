"""The send writer's conversation rows: the list kept in the inbox rows' transaction.

After a batch's inbox rows are written (``sends.SendWrites``), each touched
(account, conversation) gets one upsert carrying the batch's newest message of that
conversation and how many of the batch's rows there were received ones
(``received`` adds them up). Rows numbered in Python give their values directly; a bulk
group message's rows (``delivery.BulkMessage``) are upserted by the database from
``group_members`` and the inbox counters, like its inbox rows.

Cost on the send path: one multi-row upsert per batch (a few on SQLite, ``multirow``;
two rows per 1:1 message, fewer when a batch holds several messages of one
conversation), and one INSERT … SELECT per bulk group. The rows are written in sorted
key order, after the inbox counters, which every writer locks first: two send batches
that touch the same conversation row hold that account's counter already, so they
never wait on each other's conversation rows; ``conversations.SqlConversations`` locks
a single conversation row (reads) or rows in sorted order (recall), never a counter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.conversation_protocol import ConversationKind, preview_of
from data_plane.storage.messages.delivery import BulkMessage
from data_plane.storage.messages.items import RECEIVED, InboxRow, Send
from data_plane.storage.messages.multirow import MultiRowUpsert

USER = int(ConversationKind.USER)
GROUP = int(ConversationKind.GROUP)
COLUMNS = (
    "tenant, account, kind, peer, last_seq, last_message_id, last_sender, last_time, "
    "last_type, preview, received"
)
_UPDATES = (
    "last_seq", "last_message_id", "last_sender", "last_time", "last_type", "preview"
)  # fmt: skip

WIDTH = 11
"""Values per conversation row (``COLUMNS``)."""

ConvKey = tuple[str, str, int, str]
"""(tenant, account, kind, peer)."""


class ConversationWrites:
    """Conversation upserts of a send batch, per dialect (``mysql``: literals, as the
    other send statements on MySQL; SQLite: multi-row statements with parameters)."""

    def __init__(self, mysql: bool) -> None:
        self.mysql = mysql
        if mysql:
            sets = ", ".join(f"{c} = VALUES({c})" for c in _UPDATES)
            self._upsert_tail = (
                f" ON DUPLICATE KEY UPDATE {sets}, received = received + VALUES(received)"
            )
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in _UPDATES)
            self._upsert_tail = (
                " ON CONFLICT (tenant, account, kind, peer) DO UPDATE SET "
                f"{sets}, received = conversations.received + excluded.received"
            )
        self._multirow = MultiRowUpsert(
            f"INSERT INTO conversations ({COLUMNS})", WIDTH, self._upsert_tail
        )

    async def write(
        self,
        conn: WriterConnection,
        stored: Sequence[tuple[Send, int, int]],
        rows: Sequence[InboxRow],
        bulk: Sequence[BulkMessage],
    ) -> None:
        """Upsert the conversations of the batch's inbox rows (``rows`` numbered in
        Python, ``bulk`` written by the database); ``stored`` gives types and bodies.

        Per conversation of the batch, one row: its newest inbox row's message (the
        highest sequence) and the count of received rows. A message's values (sender,
        time, type, preview) are built once for all its rows.
        """
        details = {message_id: item for item, message_id, _ in stored}
        if rows and self.mysql:
            latest = _newest(rows)
            await self._upsert_literals(conn, sorted(latest), latest, details)
        elif rows:
            await self._multirow.run(conn, _flat_values(rows, details))
        for message, count, sent_by in _bulk_groups(bulk) if bulk else ():
            await self._upsert_bulk(conn, message, details[message.message_id], count, sent_by)

    async def _upsert_literals(
        self,
        conn: WriterConnection,
        keys: list[ConvKey],
        latest: dict[ConvKey, list[Any]],
        details: dict[int, Send],
    ) -> None:
        """MySQL: one multi-row statement of literals, rows in ``keys`` (sorted) order
        (strings escaped once per transaction by ``conn.escape``); a message's shared
        values rendered once, an account's leading values once."""
        escape = conn.escape
        shared: dict[int, str] = {}
        rendered: list[str] = []
        owner: tuple[str, str] | None = None
        head = ""
        for key in keys:
            tenant, account, kind, peer = key
            seq, tail, received = latest[key]
            if owner != (tenant, account):
                owner = (tenant, account)
                head = f"({escape(tenant)},{escape(account)},"
            message_id = tail[0]
            common = shared.get(message_id)
            if common is None:
                item = details[message_id]
                common = shared[message_id] = (
                    f"{int(message_id)},{escape(item.sender)},{int(tail[4])},"
                    f"{int(item.type)},{escape(preview_of(item.body))},"
                )
            rendered.append(f"{head}{kind},{escape(peer)},{int(seq)},{common}{received})")
        await conn.execute(
            f"INSERT INTO conversations ({COLUMNS}) VALUES {','.join(rendered)}" + self._upsert_tail
        )

    async def _upsert_bulk(
        self,
        conn: WriterConnection,
        message: BulkMessage,
        item: Send,
        count: int,
        sent_by: Counter[str],
    ) -> None:
        """Every member's conversation of a bulk group: its newest message of the batch
        (numbered from the member's counter, as ``insert_bulk_inbox``), and ``count``
        received rows less those the member sent itself."""
        m = "%s" if self.mysql else "?"
        cases = " ".join(f"WHEN {m} THEN {int(n)}" for n in sent_by.values())
        own = f"CASE gm.account {cases} ELSE 0 END" if sent_by else "0"
        statement = (
            f"INSERT INTO conversations ({COLUMNS}) "
            f"SELECT gm.tenant, gm.account, {GROUP}, gm.group_id, s.seq - {m}, {m}, {m}, "
            f"{m}, {m}, {m}, {int(count)} - {own} "
            "FROM group_members gm JOIN inbox_seq s "
            "ON s.tenant = gm.tenant AND s.account = gm.account "
            f"WHERE gm.tenant = {m} AND gm.group_id = {m}" + self._upsert_tail
        )
        params: list[Any] = [
            message.later,
            message.message_id,
            message.sender,
            message.send_time,
            item.type,
            preview_of(item.body),
        ]
        params.extend(sent_by)
        params.extend((message.tenant, message.group_id))
        await conn.execute(statement, params)


def _newest(rows: Sequence[InboxRow]) -> dict[ConvKey, list[Any]]:
    """Per conversation of ``rows``: [its newest row's sequence, that row's tail, the
    count of received rows]."""
    latest: dict[ConvKey, list[Any]] = {}
    for tenant, account, seq, tail in rows:
        group_id = tail[3]
        key = (tenant, account, GROUP, group_id) if group_id else (tenant, account, USER, tail[2])
        found = latest.get(key)
        if found is None:
            latest[key] = [seq, tail, 1 if tail[1] == RECEIVED else 0]
            continue
        if tail[1] == RECEIVED:
            found[2] += 1
        if seq > found[0]:
            found[0] = seq
            found[1] = tail
    return latest


def _flat_values(rows: Sequence[InboxRow], details: dict[int, Send]) -> list[Any]:
    """SQLite: the conversation rows' values one after another (``COLUMNS`` order), in
    one pass in the inbox rows' order. A conversation met again takes the newer row's
    message in place and adds its received count. The order of the rows does not
    matter on SQLite, which locks the whole database for a write (on MySQL it does:
    ``_newest`` and sorted keys)."""
    values: list[Any] = []
    at: dict[ConvKey, int] = {}
    shared: dict[int, tuple[Any, ...]] = {}
    for tenant, account, seq, tail in rows:
        message_id, direction, account_b, group_id, send_time = tail
        key = (tenant, account, GROUP, group_id) if group_id else (tenant, account, USER, account_b)
        common = shared.get(message_id)
        if common is None:
            item = details[message_id]
            common = shared[message_id] = (
                message_id, item.sender, send_time, item.type, preview_of(item.body)
            )  # fmt: skip
        start = at.get(key)
        if start is None:
            at[key] = len(values)
            values += key
            values.append(seq)
            values += common
            values.append(1 if direction == RECEIVED else 0)
            continue
        if seq > values[start + 4]:
            values[start + 4] = seq
            values[start + 5 : start + 10] = common
        if direction == RECEIVED:
            values[start + 10] += 1
    return values


def _bulk_groups(
    bulk: Sequence[BulkMessage],
) -> list[tuple[BulkMessage, int, Counter[str]]]:
    """Per bulk group of the batch: its newest message, its message count, and how many
    of them each sender sent."""
    counts: Counter[tuple[str, str]] = Counter()
    senders: dict[tuple[str, str], Counter[str]] = {}
    newest: dict[tuple[str, str], BulkMessage] = {}
    for message in bulk:
        key = (message.tenant, message.group_id)
        counts[key] += 1
        senders.setdefault(key, Counter())[message.sender] += 1
        if message.later == 0:
            newest[key] = message
    return [(newest[key], counts[key], senders[key]) for key in sorted(newest)]
