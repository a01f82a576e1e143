"""The send writer's batch: decide every send in queue order, then write it in bulk.

Theory of operation (one transaction per batch, see ``writer``):

1. look up the batch's client message ids already stored (``originals``; skipped for a
   small 1:1 batch, which is first stored optimistically, see ``SendWrites.write``),
2. lock the groups it writes to (``SELECT … FOR UPDATE``) and read their members,
3. decide every item in batch order (duplicates, ``GroupNotFound``, ``NotAMember``,
   group sequence + 1) and insert the contents,
4. reserve each touched inbox's next sequences with one upsert per tenant that adds the
   batch's row count to ``inbox_seq`` (which locks those rows until COMMIT) and read the
   results back, then
5. insert the inbox rows, numbered in batch order within each inbox (``delivery`` says
   which rows the database numbers itself, in bulk), then
6. upsert the conversations those rows belong to (``conversation_writes``).

Statements are batched (one multi-row statement or ``executemany``), never one per inbox
row. The hot inbox counters are locked last, so they are held only for the last
statements and the commit. Lock order is the same in every transaction: group rows,
then inbox counters, each sorted by (tenant, key). Counters stay locked until COMMIT,
so inbox sequences commit in order with no gaps, across nodes too. A 1:1 batch is
three round trips (duplicate lookup; contents + counters + their read-back; inbox rows +
COMMIT), two without client message ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.conversation_writes import ConversationWrites
from data_plane.storage.messages.delivery import DeliveryPlan, plan_deliveries
from data_plane.storage.messages.items import (
    InboxRow,
    Send,
    SendOutcome,
    by_tenant,
    chunks,
    message_row,
)
from data_plane.storage.messages.outbox import OutboxWriter
from data_plane.storage.messages.protocol import GroupNotFound, NotAMember, SendResult
from data_plane.storage.messages.statements import SendStatements

BULK_MIN_MEMBERS = 32
"""Groups this large have their inbox rows written by the database (``delivery``)."""
OPTIMISTIC_MAX = 32
"""Send batches this small are stored before looking for resends (see ``SendWrites.write``)."""
COUNTER_CHUNK = 1000
"""Inbox counters per upsert / read-back (a 1,000-member group message in one go)."""


class SendWrites:
    """A send batch's statements (``writer.BatchWork`` of the send writer)."""

    def __init__(self, statements: SendStatements, ids: SnowflakeIds) -> None:
        self.statements = statements
        self._ids = ids
        self.conversations = ConversationWrites(mysql=statements.mark == "%s")
        """The conversation list's upserts, in the same transaction as the inbox rows."""
        self.bulk_min_members = BULK_MIN_MEMBERS
        """Groups at least this large are written in bulk when they can be (tests lower it)."""
        self.optimistic_max = OPTIMISTIC_MAX
        """Batches this small skip the duplicate lookup unless a resend is among them."""
        self.outbox: OutboxWriter | None = None
        """Writes the batch's ``message.created`` webhook events in its transaction."""

    async def write(
        self, conn: WriterConnection, items: Sequence[Send]
    ) -> list[SendOutcome | BaseException]:
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
        items: Sequence[Send],
        originals: dict[tuple[str, str, str], SendResult],
    ) -> list[SendOutcome | BaseException]:
        """Decide every item in batch order (``originals``: stored sends among the
        batch's keys) and write contents, counters and inbox rows."""
        sql = self.statements
        wanted = {(i.tenant, i.group_id) for i in items if i.group_id and i.key not in originals}
        group_seqs, group_accounts = await self._lock_groups(conn, wanted)
        group_sets = {group: set(accounts) for group, accounts in group_accounts.items()}
        outcomes: list[SendOutcome | BaseException] = []
        in_batch: dict[tuple[str, str, str], SendResult] = {}
        message_rows: list[tuple[Any, ...]] = []
        stored: list[tuple[Send, int, int]] = []
        user_sends: list[tuple[int, Send, SendResult]] = []
        group_sends: list[tuple[int, Send, SendResult, list[str]]] = []
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
                if item.sender not in group_sets[group] and item.sender != SYSTEM_SENDER:
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
            message_rows.append(message_row(item, message_id, send_time, seq))
            stored.append((item, message_id, send_time))
            if item.group_id:
                accounts = list(group_accounts[(item.tenant, item.group_id)])
                group_sends.append((len(outcomes), item, result, accounts))
                outcomes.append((result, accounts))
            else:
                user_sends.append((len(outcomes), item, result))
                outcomes.append((result, []))
        if message_rows:
            plan = plan_deliveries(stored, group_accounts, group_sets, self.bulk_min_members)
            await sql.insert_messages(conn, message_rows)
            if self.outbox is not None:  # the webhook events commit with their messages
                await self.outbox.messages_created(conn, message_rows, self._ids.now_ms())
            user_seqs, bulk_seqs = await self._insert_inbox_rows(conn, plan, stored)
            await self._store_group_seqs(conn, group_seqs, wanted)
            for index, item, result, accounts in group_sends:
                # Every member's row, so the push can tell each inbox where it stands.
                message_id = result.message_id
                seqs = bulk_seqs.get(message_id)
                if seqs is None:
                    seqs = tuple([user_seqs[(item.tenant, a, message_id)] for a in accounts])
                own = seqs[accounts.index(item.sender)] if item.sender in accounts else 0
                outcomes[index] = (
                    SendResult(message_id, result.send_time, False, result.seq, own, 0, seqs),
                    accounts,
                )
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
        self, conn: WriterConnection, items: Sequence[Send]
    ) -> dict[tuple[str, str, str], SendResult]:
        """Already stored sends among the batch's (tenant, sender, client_msg_id) keys."""
        keys = {(i.tenant, (i.sender, i.client_msg_id)) for i in items if i.client_msg_id}
        found: dict[tuple[str, str, str], SendResult] = {}
        for tenant, pairs in by_tenant(keys):
            for chunk in chunks(pairs):
                rows = await self.statements.originals(conn, tenant, chunk)
                for sender, client_msg_id, message_id, send_time, group_seq in rows:
                    found[(tenant, sender, client_msg_id)] = SendResult(
                        message_id, send_time, duplicate=True, seq=group_seq
                    )
        return found

    async def _lock_groups(
        self, conn: WriterConnection, wanted: set[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], list[str]]]:
        """Lock the groups' rows (sorted); their sequences and members by join order."""
        sql = self.statements
        seqs: dict[tuple[str, str], int] = {}
        accounts: dict[tuple[str, str], list[str]] = {}
        for tenant, group_ids in by_tenant(wanted):
            for chunk in chunks(group_ids):
                for group_id, seq in await sql.lock_groups(conn, tenant, chunk):
                    seqs[(tenant, group_id)] = seq
                    accounts[(tenant, group_id)] = []
            found = [g for t, g in seqs if t == tenant]
            for chunk in chunks(found):
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
            await self.statements.store_group_seqs(conn, rows)

    async def _insert_inbox_rows(
        self, conn: WriterConnection, plan: DeliveryPlan, stored: list[tuple[Send, int, int]]
    ) -> tuple[dict[tuple[str, str, int], int], dict[int, tuple[int, ...]]]:
        """One inbox row per delivery, numbered in batch order within each inbox.

        Counters first (one sorted pass), then the rows numbered in Python, then the
        bulk group messages' rows, numbered by the database from the counters, then
        their conversations. Returns the sequence of each row numbered here by (tenant,
        account, message_id), and of each bulk message's rows in member order by message
        id (one read of the group's counters, still locked by this transaction, per bulk
        group of the batch).
        """
        counts = Counter((tenant, account) for tenant, account, _ in plan.individual)
        next_seq = await self._reserve_inbox_seqs(conn, counts, plan.bulk_counts)
        rows: list[InboxRow] = []
        row_seqs: dict[tuple[str, str, int], int] = {}
        for tenant, account, tail in plan.individual:
            key = (tenant, account)
            seq = next_seq[key]
            next_seq[key] = seq + 1
            rows.append((tenant, account, seq, tail))
            row_seqs[(tenant, account, tail[0])] = seq
        if rows:
            await self.statements.insert_inbox(conn, rows)
        bulk_seqs: dict[int, tuple[int, ...]] = {}
        counters: dict[tuple[str, str], list[int]] = {}
        for bulk in plan.bulk:
            await self.statements.insert_bulk_inbox(conn, bulk)
            group = (bulk.tenant, bulk.group_id)
            last = counters.get(group)
            if last is None:
                last = counters[group] = await self.statements.member_counters(conn, *group)
            bulk_seqs[bulk.message_id] = tuple([seq - bulk.later for seq in last])
        await self.conversations.write(conn, stored, rows, plan.bulk)
        return row_seqs, bulk_seqs

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
        sql = self.statements
        accounts_of = dict(by_tenant(counts))
        groups_of = dict(by_tenant(bulk_counts))
        first: dict[tuple[str, str], int] = {}
        for tenant in sorted(accounts_of.keys() | groups_of.keys()):
            accounts = accounts_of.get(tenant, [])
            await sql.add_to_counters(
                conn,
                tenant,
                [(a, counts[(tenant, a)]) for a in accounts],
                [(g, bulk_counts[(tenant, g)]) for g in groups_of.get(tenant, [])],
            )
            for chunk in chunks(accounts, COUNTER_CHUNK):
                for account, last in await sql.read_counters(conn, tenant, chunk):
                    first[(tenant, account)] = last - counts[(tenant, account)] + 1
        return first
