"""The webhook outbox, deliveries, leases and the push queue on SQLite and MySQL.

``message.created`` rows commit in the send transaction (and only for tenants that
want them, never for a refused send or a resend); fan-out moves rows into per-endpoint
queues once; a lease has one holder until it runs out; push jobs collapse per token,
keep what arrives while one is being sent, and are cancelled per account.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.outbox import DELIVERED, OutboxWriter
from data_plane.storage.messages.protocol import GroupNotFound
from data_plane.storage.messages.schema import event_outbox
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from tests.storage.test_message_contract import (  # noqa: F401  (fixtures)
    database_url,
    mysql_tables,
    sql_url,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(sql_url: str) -> AsyncIterator[SqlMessageStore]:  # noqa: F811
    async with open_sql_message_store(sql_url, node_id=31) as opened:
        yield opened


async def outbox_rows(db: SqlMessageStore, tenant: str) -> list[tuple[str, str]]:
    async def work(conn: AsyncConnection) -> list[tuple[str, str]]:
        rows = await conn.execute(
            select(event_outbox.c.event_type, event_outbox.c.payload)
            .where(event_outbox.c.tenant == tenant)
            .order_by(event_outbox.c.id)
        )
        return [(row.event_type, row.payload.decode()) for row in rows]

    return await db._pool.read(work)


async def test_message_events_commit_with_their_messages(db: SqlMessageStore) -> None:
    wanted, quiet = f"w-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    db.send_writes.outbox = OutboxWriter(lambda tenant, _event: tenant == wanted)
    first = await db.send_user_message(wanted, "a", "b", 1, b"one", "", "c1")
    await db.send_user_message(wanted, "a", "b", 1, b"two", "", None)
    again = await db.send_user_message(wanted, "a", "b", 1, b"one", "", "c1")  # a resend
    assert again.duplicate and again.message_id == first.message_id
    await db.send_user_message(quiet, "a", "b", 1, b"not wanted", "", None)
    with pytest.raises(GroupNotFound):
        await db.send_group_message(wanted, "a", "no-such-group", 1, b"refused", "", None)
    rows = await outbox_rows(db, wanted)
    assert [kind for kind, _ in rows] == ["message.created", "message.created"]
    assert f'"message_id":"{first.message_id}"' in rows[0][1] and '"body":"one"' in rows[0][1]
    assert await outbox_rows(db, quiet) == []


async def test_fan_out_moves_each_event_once_into_endpoint_queues(db: SqlMessageStore) -> None:
    tenant = f"f-{uuid.uuid4().hex[:8]}"
    out = db.outbound
    for kind in ("login", "logout", "login"):
        await out.append(tenant, kind, {"account": "a"}, 1000)
    await out.append(tenant, "webhook.test", {}, 1000, endpoint_id="wh_only")

    def route(_tenant: str, kind: str, addressed: str) -> list[str]:
        if addressed:
            return [addressed]
        return ["wh_all", "wh_login"] if kind == "login" else ["wh_all"]

    assert await out.fan_out(route, 2000) >= 4
    assert await out.fan_out(route, 2000) == 0  # moved once
    assert await outbox_rows(db, tenant) == []
    all_queue = await out.head(tenant, "wh_all", 10)
    assert [d.event_type for d in all_queue] == ["login", "logout", "login"]
    assert [d.event_type for d in await out.head(tenant, "wh_login", 10)] == ["login", "login"]
    assert [d.event_type for d in await out.head(tenant, "wh_only", 10)] == ["webhook.test"]
    assert (tenant, "wh_all") in await out.endpoints_due(2000, 100)
    head = all_queue[0]
    await out.record(
        head.id,
        status=DELIVERED,
        attempts=1,
        next_attempt_at=head.next_attempt_at,
        finished_at=3000,
        status_code=200,
        error="",
        latency_ms=5,
    )
    assert [d.id for d in await out.head(tenant, "wh_all", 10)] == [d.id for d in all_queue[1:]]
    assert await out.clean(finished_before_ms=2500) == 0  # still within retention
    assert await out.clean(finished_before_ms=3500) == 1


async def test_a_lease_has_one_holder_until_it_runs_out(db: SqlMessageStore) -> None:
    name = f"webhook:{uuid.uuid4().hex[:8]}"
    out = db.outbound
    assert await out.lease(name, "node-a", now_ms=1000, ttl_ms=500)
    assert not await out.lease(name, "node-b", now_ms=1200, ttl_ms=500)
    assert await out.lease(name, "node-a", now_ms=1400, ttl_ms=500)  # renewed
    assert not await out.lease(name, "node-b", now_ms=1800, ttl_ms=500)
    assert await out.lease(name, "node-b", now_ms=1901, ttl_ms=500)  # ran out: taken over
    await out.release(name, "node-a")  # not ours any more: no effect
    assert not await out.lease(name, "node-a", now_ms=2000, ttl_ms=500)


async def test_push_jobs_collapse_per_token_and_are_cancelled(db: SqlMessageStore) -> None:
    tenant = f"p-{uuid.uuid4().hex[:8]}"
    queue = db.push_queue
    await queue.register(tenant, "bob", "phone", "tok-1", "android", 0)
    await queue.register(tenant, "bob", "tablet", "tok-2", "ios", 0)
    await queue.register(tenant, "bob", "phone", "tok-3", "android", 0)  # replaces tok-1
    assert await queue.tokens(tenant, "bob") == [("phone", "tok-3"), ("tablet", "tok-2")]

    async def message(message_id: int, now_ms: int) -> int:
        return await queue.queue(
            tenant,
            ["bob", "nobody"],
            sender="alice",
            group_id="",
            message_id=message_id,
            preview=f"m{message_id}",
            now_ms=now_ms,
            collapse_ms=1000,
        )

    assert await message(1, 10_000) == 2  # one job per token
    await message(2, 10_100)
    await message(3, 10_200)
    assert await queue.due(10_999, 10) == []  # the window is still open
    jobs = await queue.due(11_000, 10)
    assert sorted((j.device, j.count, j.message_id, j.preview) for j in jobs) == [
        ("phone", 3, 3, "m3"),
        ("tablet", 3, 3, "m3"),
    ]
    phone = next(j for j in jobs if j.device == "phone")
    await message(4, 11_050)  # arrives while the phone's job is being sent
    await queue.finish(phone, 11_100, 1000)
    left = {j.device: j for j in await queue.due(20_000, 10)}
    assert (left["phone"].count, left["phone"].message_id, left["phone"].due_at) == (1, 4, 12_100)
    assert left["tablet"].count == 4
    assert await queue.cancel(tenant, "bob") == 2
    assert await queue.due(20_000, 10) == []
    assert await queue.unregister(tenant, "bob", "phone", "not-the-token") is False
    assert await queue.unregister(tenant, "bob", "phone") is True
