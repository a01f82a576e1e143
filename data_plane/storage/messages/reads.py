"""Reads of the SQL message store: inbox pages and message contents.

Reads run on the engine's pool (``engine.PooledConnections.read``), in autocommit on
SQLite. An inbox page is one statement: the anchor (the device's read index, or the
inbox sequence of ``after_message_id``) is a subquery, so no commit can land between
reading the anchor and reading the page.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Exists, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.items import chunks
from data_plane.storage.messages.protocol import (
    Content,
    Direction,
    InboxMessage,
    IndexEntry,
    IndexPage,
    UnknownMessage,
    first_occurrences,
)
from data_plane.storage.messages.schema import (
    hidden_messages,
    inbox,
    messages,
    read_index,
)


class Reads:
    """``list_index`` and ``get_contents`` of ``store.SqlMessageStore``."""

    def __init__(self, pool: PooledConnections) -> None:
        self._pool = pool

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
            .where(
                inbox.c.tenant == tenant,
                inbox.c.account == account,
                inbox.c.seq > anchor,
                ~hidden(tenant, account),
            )
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

        return await self._pool.read(work)

    async def is_sent(self, tenant: str, sender: str, client_msg_id: str) -> bool:
        """See ``MessageStore.is_sent``: one lookup on the idempotency key's unique index."""

        async def work(conn: AsyncConnection) -> bool:
            rows = await conn.execute(
                select(messages.c.message_id)
                .where(
                    messages.c.tenant == tenant,
                    messages.c.sender == sender,
                    messages.c.client_msg_id == client_msg_id,
                )
                .limit(1)
            )
            return rows.first() is not None

        return await self._pool.read(work)

    async def read_inbox(
        self, tenant: str, account: str, after_seq: int, limit: int
    ) -> list[InboxMessage]:
        """See ``MessageStore.read_inbox``: one statement, the rows joined with their
        contents by primary key."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        joined = inbox.join(
            messages,
            and_(messages.c.message_id == inbox.c.message_id, messages.c.tenant == tenant),
        )
        statement = (
            select(
                inbox.c.seq,
                inbox.c.message_id,
                inbox.c.direction,
                inbox.c.account_b,
                inbox.c.group_id,
                messages.c.group_seq,
                inbox.c.send_time,
                messages.c.type,
                messages.c.body,
                messages.c.extra,
                messages.c.client_msg_id,
            )
            .select_from(joined)
            .where(inbox.c.tenant == tenant, inbox.c.account == account, inbox.c.seq > after_seq)
            .order_by(inbox.c.seq)
            .limit(limit)
        )

        async def work(conn: AsyncConnection) -> list[InboxMessage]:
            return [
                InboxMessage(s, m, Direction(d), b, g, gs, t, ty, bytes(body), ex, c or "")
                for s, m, d, b, g, gs, t, ty, body, ex, c in await conn.execute(statement)
            ]

        return await self._pool.read(work)

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
            for chunk in chunks(wanted):
                rows = await conn.execute(
                    select(
                        messages.c.message_id,
                        messages.c.type,
                        messages.c.body,
                        messages.c.extra,
                        messages.c.recalled_at,
                    )
                    .select_from(joined)
                    .where(
                        inbox.c.tenant == tenant,
                        inbox.c.account == account,
                        inbox.c.message_id.in_(chunk),
                        ~hidden(tenant, account),
                    )
                )
                for message_id, type_, body, extra, recalled_at in rows:
                    found[message_id] = Content(
                        message_id, type_, bytes(body), extra, recalled_at > 0
                    )
            return [found[m] for m in wanted if m in found]

        if not wanted:
            return []
        return await self._pool.read(work)


def _inbox_seq_of(tenant: str, account: str, message_id: int) -> Select[tuple[int]]:
    return select(inbox.c.seq).where(
        inbox.c.tenant == tenant, inbox.c.account == account, inbox.c.message_id == message_id
    )


def hidden(tenant: str, account: str) -> Exists:
    """Whether the account deleted the current ``inbox`` row's message for itself (a
    primary-key probe of ``hidden_messages`` per row)."""
    return (
        select(hidden_messages.c.message_id)
        .where(
            hidden_messages.c.tenant == tenant,
            hidden_messages.c.account == account,
            hidden_messages.c.message_id == inbox.c.message_id,
        )
        .exists()
    )
