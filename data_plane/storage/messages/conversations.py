"""Conversations in the SQL message store: list, history, reads, recall, delete.

The list and a conversation's read position are ``conversations`` rows (written by the
send writer, ``conversation_writes``); history pages ``messages`` through
``ix_messages_conversation`` (by message id), keeping the rows in the caller's inbox;
recall rewrites the ``messages`` row; delete adds a
``hidden_messages`` row. Reads run on the engine's pool in autocommit, writes in one
pooled transaction each (``engine.PooledConnections``). ``mark_read`` locks the one
conversation row it moves (``FOR UPDATE``; SQLite's write transaction is exclusive), so
a send committing meanwhile is either counted in ``received`` and in the rows after the
read message, or in neither. Costs are stated per method in ``conversation_protocol``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.conversation_protocol import (
    UNREAD_COUNT_CAP,
    Conversation,
    ConversationKind,
    ConversationPage,
    HistoryEntry,
    HistoryPage,
    NotTheSender,
    ReadCount,
    ReadResult,
    RecallExpired,
    RecallResult,
)
from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.protocol import (
    Content,
    Direction,
    IndexEntry,
    StoredMessage,
    UnknownMessage,
)
from data_plane.storage.messages.reads import hidden
from data_plane.storage.messages.recall_writes import clear_previews, manages_group
from data_plane.storage.messages.schema import (
    conversations,
    group_members,
    hidden_messages,
    inbox,
    messages,
)

c = conversations.c
_LIST_COLUMNS = (
    c.kind,
    c.peer,
    c.last_seq,
    c.last_message_id,
    c.last_sender,
    c.last_time,
    c.last_type,
    c.preview,
    c.received - c.read_received,
    c.read_message_id,
    c.read_seq,
)


def _conversation(row: Row[Any] | tuple[Any, ...]) -> Conversation:
    kind, *rest = row
    return Conversation(ConversationKind(kind), *rest)


def _in_conversation(kind: ConversationKind, account: str, peer: str) -> ColumnElement[bool]:
    """``messages`` of the conversation (the ``ix_messages_conversation`` prefix): the
    group's, or both directions of a 1:1 talk (the two accounts in binary order, as the
    database orders them: Python's str order is the UTF-8 byte order)."""
    if kind == ConversationKind.GROUP:
        key = (peer, "")
    else:
        key = (account, peer) if account < peer else (peer, account)
    return and_(messages.c.conv_a == key[0], messages.c.conv_b == key[1])


def _own_rows(tenant: str, account: str) -> ColumnElement[bool]:
    """Joins ``messages`` to the account's ``inbox`` row of each (the unique key)."""
    return and_(
        inbox.c.tenant == tenant,
        inbox.c.account == account,
        inbox.c.message_id == messages.c.message_id,
    )


class SqlConversations:
    """The ``ConversationStore`` methods of ``store.SqlMessageStore``."""

    def __init__(self, pool: PooledConnections, now_ms: Callable[[], int]) -> None:
        self._pool = pool
        self._now_ms = now_ms

    async def list_conversations(
        self, tenant: str, account: str, before_seq: int, limit: int
    ) -> ConversationPage:
        """See ``ConversationStore.list_conversations``: one index range."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(*_LIST_COLUMNS).where(c.tenant == tenant, c.account == account)
        if before_seq:
            query = query.where(c.last_seq < before_seq)
        query = query.order_by(c.last_seq.desc()).limit(limit + 1)

        async def work(conn: AsyncConnection) -> ConversationPage:
            found = [_conversation(row) for row in await conn.execute(query)]
            return ConversationPage(found[:limit], has_more=len(found) > limit)

        return await self._pool.read(work)

    async def get_conversation(
        self, tenant: str, account: str, kind: ConversationKind, peer: str
    ) -> Conversation | None:
        """See ``ConversationStore.get_conversation``: one primary-key lookup."""
        query = select(*_LIST_COLUMNS).where(
            c.tenant == tenant, c.account == account, c.kind == int(kind), c.peer == peer
        )

        async def work(conn: AsyncConnection) -> Conversation | None:
            row = (await conn.execute(query)).first()
            return None if row is None else _conversation(row)

        return await self._pool.read(work)

    @staticmethod
    async def _seq_in(
        conn: AsyncConnection,
        tenant: str,
        account: str,
        kind: ConversationKind,
        peer: str,
        message_id: int,
    ) -> int:
        """The inbox sequence of a message of the conversation, or ``UnknownMessage``."""
        seq = await conn.scalar(
            select(inbox.c.seq)
            .select_from(inbox.join(messages, _own_rows(tenant, account)))
            .where(
                messages.c.message_id == message_id,
                messages.c.tenant == tenant,
                _in_conversation(kind, account, peer),
            )
        )
        if seq is None:
            raise UnknownMessage(f"message {message_id} is not in this conversation")
        return int(seq)

    async def history(
        self,
        tenant: str,
        account: str,
        kind: ConversationKind,
        peer: str,
        before_message_id: int,
        limit: int,
    ) -> HistoryPage:
        """See ``ConversationStore.history``: one range of ``ix_messages_conversation``
        read backwards, each message joined to the account's inbox row (unique key); the
        range holds the conversation's messages the account does not have too (a group's
        from before it joined), so a page past a member's join reads those as well."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        m = messages.c
        joined = messages.join(inbox, _own_rows(tenant, account))
        base = (
            select(
                inbox.c.message_id,
                inbox.c.direction,
                inbox.c.send_time,
                inbox.c.account_b,
                inbox.c.group_id,
                inbox.c.seq,
                m.type,
                m.body,
                m.extra,
                m.recalled_at,
            )
            .select_from(joined)
            .where(
                m.tenant == tenant,
                _in_conversation(kind, account, peer),
                ~hidden(tenant, account),
            )
        )

        async def work(conn: AsyncConnection) -> HistoryPage:
            query = base
            if before_message_id:
                await self._seq_in(conn, tenant, account, kind, peer, before_message_id)
                query = query.where(m.message_id < before_message_id)
            rows = await conn.execute(query.order_by(m.message_id.desc()).limit(limit + 1))
            entries = [
                HistoryEntry(
                    IndexEntry(mid, Direction(d), t, b, g, s),
                    Content(mid, type_, bytes(body), extra, recalled_at > 0),
                )
                for mid, d, t, b, g, s, type_, body, extra, recalled_at in rows
            ]
            return HistoryPage(entries[:limit], has_more=len(entries) > limit)

        return await self._pool.read(work)

    async def mark_read(
        self, tenant: str, account: str, kind: ConversationKind, peer: str, message_id: int
    ) -> ReadResult:
        """See ``ConversationStore.mark_read``: a few primary-key statements and at most
        ``UNREAD_COUNT_CAP`` index entries, under the conversation row's lock."""
        key = (c.tenant == tenant, c.account == account, c.kind == int(kind), c.peer == peer)

        async def work(conn: AsyncConnection) -> ReadResult:
            seq = await self._seq_in(conn, tenant, account, kind, peer, message_id)
            row = (
                await conn.execute(select(*_LIST_COLUMNS, c.received).where(*key).with_for_update())
            ).first()
            if row is None:
                raise UnknownMessage(f"no conversation holds message {message_id}")
            group_seq = int(
                await conn.scalar(
                    select(messages.c.group_seq).where(messages.c.message_id == message_id)
                )
                or 0
            )
            current = _conversation(row[:-1])
            if seq <= current.read_seq:
                return ReadResult(False, current, group_seq)
            after = (
                select(inbox.c.direction)
                .select_from(messages.join(inbox, _own_rows(tenant, account)))
                .where(
                    messages.c.tenant == tenant,
                    _in_conversation(kind, account, peer),
                    messages.c.message_id > message_id,
                )
                .order_by(messages.c.message_id)
                .limit(UNREAD_COUNT_CAP)
                .subquery()
            )
            unread = int(
                await conn.scalar(
                    select(func.count()).where(after.c.direction == int(Direction.RECEIVED))
                )
                or 0
            )
            received = int(row[-1])
            await conn.execute(
                update(conversations)
                .where(*key)
                .values(
                    read_seq=seq,
                    read_message_id=message_id,
                    read_received=received - unread,
                    read_group_seq=group_seq,
                )
            )
            moved = Conversation(
                current.kind,
                current.peer,
                current.last_seq,
                current.last_message_id,
                current.last_sender,
                current.last_time,
                current.last_type,
                current.preview,
                unread,
                message_id,
                seq,
            )
            return ReadResult(True, moved, group_seq)

        return await self._pool.write(work)

    async def _message(
        self, conn: AsyncConnection, tenant: str, account: str, message_id: int
    ) -> tuple[Any, ...]:
        """The message's row if it is in the account's inbox, else ``UnknownMessage``."""
        m = messages.c
        row = (
            await conn.execute(
                select(
                    m.sender,
                    m.receiver,
                    m.group_id,
                    m.group_seq,
                    m.type,
                    m.client_msg_id,
                    m.send_time,
                    m.recalled_at,
                ).where(
                    m.message_id == message_id,
                    m.tenant == tenant,
                    select(inbox.c.seq)
                    .where(
                        inbox.c.tenant == tenant,
                        inbox.c.account == account,
                        inbox.c.message_id == message_id,
                    )
                    .exists(),
                )
            )
        ).first()
        if row is None:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        return tuple(row)

    async def read_count(self, tenant: str, account: str, message_id: int) -> ReadCount:
        """See ``ConversationStore.read_count``: one statement over the group's
        members, a primary-key lookup of each one's conversation row."""

        async def work(conn: AsyncConnection) -> ReadCount:
            sender, _, group_id, group_seq, *_ = await self._message(
                conn, tenant, account, message_id
            )
            if not group_id:
                raise UnknownMessage(f"message {message_id} is not a group message")
            if sender != account:
                raise NotTheSender("only the sender sees a message's read count")
            gm = group_members.c
            joined = group_members.outerjoin(
                conversations,
                and_(
                    c.tenant == gm.tenant,
                    c.account == gm.account,
                    c.kind == int(ConversationKind.GROUP),
                    c.peer == gm.group_id,
                ),
            )
            read_flag = func.coalesce(
                func.sum(case((c.read_group_seq >= group_seq, 1), else_=0)), 0
            )
            row = (
                await conn.execute(
                    select(func.count(), read_flag)
                    .select_from(joined)
                    .where(gm.tenant == tenant, gm.group_id == group_id, gm.account != account)
                )
            ).one()
            return ReadCount(read=int(row[1]), members=int(row[0]))

        return await self._pool.read(work)

    async def recall(
        self, tenant: str, account: str, message_id: int, sent_after: int
    ) -> RecallResult:
        """See ``ConversationStore.recall``: the message row, the recipients (the
        group's members: one index range), one update of the content and one of the
        recipients' conversation rows by primary key."""

        async def work(conn: AsyncConnection) -> RecallResult:
            row = await self._message(conn, tenant, account, message_id)
            sender, receiver, group_id, group_seq, type_, client_msg_id, send_time, done = row
            if sender != account and not await manages_group(conn, tenant, group_id, account):
                raise NotTheSender(
                    "only the sender or the group's owner or an admin may recall a message"
                )
            if group_id:
                found = await conn.execute(
                    select(group_members.c.account)
                    .where(group_members.c.tenant == tenant, group_members.c.group_id == group_id)
                    .order_by(group_members.c.account)
                )
                recipients = [a for (a,) in found] or [account]
            else:
                recipients = sorted({sender, receiver})
            tombstone = StoredMessage(
                message_id, sender, receiver, group_id, group_seq, type_, b"", "",
                client_msg_id, send_time,
            )  # fmt: skip
            if done:
                return RecallResult(tombstone, int(done), recipients, already=True)
            if send_time < sent_after:
                raise RecallExpired(f"message {message_id} is past the recall window")
            recalled_at = max(self._now_ms(), 1)
            await conn.execute(
                update(messages)
                .where(messages.c.message_id == message_id, messages.c.tenant == tenant)
                .values(body=b"", extra="", recalled_at=recalled_at)
            )
            await clear_previews(conn, tenant, row, recipients, message_id)
            return RecallResult(tombstone, recalled_at, recipients, already=False)

        return await self._pool.write(work)

    async def hide_message(self, tenant: str, account: str, message_id: int) -> bool:
        """See ``ConversationStore.hide_message``: two primary-key lookups, one insert."""

        async def work(conn: AsyncConnection) -> bool:
            await self._message(conn, tenant, account, message_id)
            h = hidden_messages.c
            found = await conn.scalar(
                select(h.message_id).where(
                    h.tenant == tenant, h.account == account, h.message_id == message_id
                )
            )
            if found is not None:
                return False
            await conn.execute(
                insert(hidden_messages).values(
                    tenant=tenant, account=account, message_id=message_id
                )
            )
            return True

        return await self._pool.write(work)
