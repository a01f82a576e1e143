"""The conversation features' storage costs, measured by ``bench.store_bench``.

Shapes (each on the store the 1:1 shape just filled, ``ops`` operations each, CPU
``time.process_time`` and wall time per operation):

- ``list``: ``list_conversations`` of 20, for an account with ``pairs`` conversations,
- ``history``: ``history`` pages of 50 walking back one conversation,
- ``read``: ``mark_read`` of the newest message (the unread count left is 0, so the
  bounded count stops at once) after one new message each time,
- ``read_far``: ``mark_read`` of a message 200 rows back (the count walks 200 entries),
- ``read_count``: ``read_count`` of a group message in a group of ``group_members``,
- ``recall`` and ``delete``: ``recall`` / ``hide_message`` of fresh 1:1 messages.

The write cost the conversation list adds to every send is in the 1:1 and group shapes
themselves (the upserts run in the send transaction). ``bench_conversation_upserts``
measures the conversation rows' part of it alone: the send writer's own upserts
(``ConversationWrites.write``) for batches shaped as the 1:1 shape's, each batch in a
transaction of its own on a writer connection: the time of a batch less that of a
one-message batch right after it, over the batch's other messages (µs per 1:1
message, its two rows, the commit's writing of their pages included; what a
transaction costs anyway is left out). docs/benchmarks.md has before / after figures
of the same machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.conversation_protocol import ConversationKind
from data_plane.storage.messages.conversation_writes import ConversationWrites
from data_plane.storage.messages.delivery import plan_deliveries
from data_plane.storage.messages.items import InboxRow, Send
from data_plane.storage.messages.link import WriterLink
from data_plane.storage.messages.store import SqlMessageStore
from data_plane.storage.urls import backend_of

USER, GROUP = ConversationKind.USER, ConversationKind.GROUP


async def _timed(ops: int, op: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """CPU and wall µs per call of ``op(0..ops-1)``."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for number in range(ops):
        await op(number)
    return (time.process_time() - cpu0) / ops * 1e6, (time.perf_counter() - wall0) / ops * 1e6


async def bench_conversations(
    store: SqlMessageStore, ops: int, pairs: int, group_members: int
) -> dict[str, tuple[float, float]]:
    """(CPU µs, wall µs) per operation of each shape (see the module docstring)."""
    tenant = f"conv-{uuid.uuid4().hex[:8]}"
    body = b"x" * 100
    reader = "reader"
    for peer in range(pairs):
        await store.send_user_message(tenant, f"p{peer}", reader, 1, body, "", None)
    sent = [
        (await store.send_user_message(tenant, "p0", reader, 1, body, "", None)).message_id
        for _ in range(max(ops * 2, 250))
    ]
    results: dict[str, tuple[float, float]] = {}
    results["list"] = await _timed(ops, lambda _: store.list_conversations(tenant, reader, 0, 20))
    results["history"] = await _timed(
        ops, lambda n: store.history(tenant, reader, USER, "p0", sent[-1 - (n % 200)], 50)
    )

    async def read_newest(_: int) -> None:
        result = await store.send_user_message(tenant, "p1", reader, 1, body, "", None)
        await store.mark_read(tenant, reader, USER, "p1", result.message_id)

    send_cpu, send_wall = await _timed(
        ops, lambda _: store.send_user_message(tenant, "p1", reader, 1, body, "", None)
    )
    cpu, wall = await _timed(ops, read_newest)
    results["read"] = (cpu - send_cpu, wall - send_wall)  # without its send

    far = [
        (await store.send_user_message(tenant, "p2", reader, 1, body, "", None)).message_id
        for _ in range(ops)
    ]
    for _ in range(200):
        await store.send_user_message(tenant, "p2", reader, 1, body, "", None)
    results["read_far"] = await _timed(
        ops, lambda n: store.mark_read(tenant, reader, USER, "p2", far[n])
    )
    members = [f"m{i:05d}" for i in range(group_members)]
    group = await store.create_group(tenant, members[0], "g", "", "", members)
    said, _ = await store.send_group_message(tenant, members[0], group.group_id, 1, body, "", None)
    results["read_count"] = await _timed(
        ops, lambda _: store.read_count(tenant, members[0], said.message_id)
    )
    fresh = [
        (await store.send_user_message(tenant, "p3", reader, 1, body, "", None)).message_id
        for _ in range(ops * 2)
    ]
    results["recall"] = await _timed(ops, lambda n: store.recall(tenant, "p3", fresh[n], 0))
    results["delete"] = await _timed(
        ops, lambda n: store.hide_message(tenant, reader, fresh[ops + n])
    )
    return results


async def bench_conversation_upserts(
    url: str, batch: int, batches: int, pairs: int
) -> tuple[float, float]:
    """(CPU µs, wall µs) per 1:1 message of its conversation upserts alone (see the
    module docstring): ``batches`` batches of ``batch`` (> 1) messages among ``pairs``
    pairs, after one warm-up batch, less the same of one message, over ``batch`` - 1."""
    writes = ConversationWrites(mysql=backend_of(url) == "mysql")
    link = WriterLink(url)
    ids = SnowflakeIds(node_id=2)
    tenant = f"upsert-{uuid.uuid4().hex[:8]}"
    seqs: dict[str, int] = {}
    body = b"x" * 100

    def shaped(number: int, size: int) -> tuple[list[tuple[Send, int, int]], list[InboxRow]]:
        stored = []
        for i in range(size):
            item = Send(tenant, f"s{i % pairs}", f"r{i % pairs}", "", 1, body, "", f"u{number}-{i}")
            message_id = ids.next_id()
            stored.append((item, message_id, SnowflakeIds.time_of(message_id)))
        rows: list[InboxRow] = []
        for row_tenant, account, tail in plan_deliveries(stored, {}, {}, batch + 1).individual:
            seqs[account] = seqs.get(account, 0) + 1
            rows.append((row_tenant, account, seqs[account], tail))
        return stored, rows

    async def work(
        conn: WriterConnection, shape: tuple[list[tuple[Send, int, int]], list[InboxRow]]
    ) -> None:
        await writes.write(conn, shape[0], shape[1], [])

    try:
        await link.transaction(work, shaped(-1, batch))
        cpu = wall = 0.0
        for number in range(batches):
            shape, one = shaped(number, batch), shaped(number, 1)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await link.transaction(work, shape)
            cpu1, wall1 = time.process_time(), time.perf_counter()
            await link.transaction(work, one)  # a transaction's own cost, taken off
            cpu2, wall2 = time.process_time(), time.perf_counter()
            cpu += (cpu1 - cpu0) - (cpu2 - cpu1)
            wall += (wall1 - wall0) - (wall2 - wall1)
    finally:
        await link.aclose()
    messages = (batch - 1) * batches
    return cpu / messages * 1e6, wall / messages * 1e6
