"""The ack writer's batch: move read indexes forward, never back.

One transaction per batch (see ``writer``): look up each acked message's inbox sequence,
lock the devices' read-index rows (sorted), then per item in queue order move the index
only when the message is newer than what the device acknowledged. Acks lock only
read-index rows. A concurrent first ack of the same device breaks the unique key; the
batch then runs again and sees that row.
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.items import Ack, by_tenant, chunks
from data_plane.storage.messages.protocol import UnknownMessage
from data_plane.storage.messages.statements import SendStatements


class AckWrites:
    """An ack batch's statements (``writer.BatchWork`` of the ack writer)."""

    def __init__(self, statements: SendStatements) -> None:
        self.statements = statements

    async def write(
        self, conn: WriterConnection, items: Sequence[Ack]
    ) -> list[bool | BaseException]:
        seqs: dict[tuple[str, str, int], int] = {}
        for tenant, pairs in by_tenant((i.tenant, (i.account, i.message_id)) for i in items):
            for chunk in chunks(pairs):
                rows = await self.statements.select_pairs(
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
        for tenant, devices in by_tenant((i.tenant, (i.account, i.device)) for i in known):
            for part in chunks(devices):
                rows = await self.statements.select_pairs(
                    conn,
                    "read_index",
                    "t.account, t.device, t.seq",
                    tenant,
                    ("account", "device"),
                    part,
                    " ORDER BY t.account, t.device" + self.statements.for_update,
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
        m = self.statements.mark
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
        for chunk in chunks(inserts):
            # A concurrent first ack of the same device fails this with a unique-key
            # error; the batch then runs again and sees that row.
            await conn.execute(
                "INSERT INTO read_index (tenant, account, device, message_id, seq) "
                f"VALUES {self.statements.marks(len(chunk), 5)}",
                [value for row in chunk for value in row],
            )
