"""The webhook outbox, each endpoint's deliveries, and the outbound leases (SQL).

Theory of operation:

1. An event is a row of ``event_outbox`` written in the transaction of the event's own
   data: ``OutboxWriter.messages_created`` runs inside the send writer's batch
   transaction (``sends.SendWrites``), so a message is committed with its event or not
   at all; other events (logins, groups) are appended in a transaction of their own the
   moment they happen (``Outbound.append``). The body is fixed at that moment: every
   attempt of every endpoint sends the same bytes, with ``webhook-id`` = ``evt_<row id>``.
2. ``Outbound.fan_out`` moves outbox rows, oldest first, into ``webhook_deliveries``:
   one row per endpoint that wants the event, in one transaction that also deletes the
   outbox rows (locked ``FOR UPDATE``, so two nodes never fan out one row twice).
3. An endpoint's pending deliveries are its queue, by id. A dispatcher holding the
   endpoint's lease (``Outbound.lease``) sends the head, records the attempt, and moves
   on only when the head is delivered or failed for good: deliveries to one endpoint
   are in order. The lease expires, so a dead node's endpoints are taken over.
4. Finished deliveries are kept for a retention period for ``GET …/deliveries`` and then
   deleted (``Outbound.clean``): both tables stay bounded.

Delivery is at least once: a node killed between an endpoint's 2xx answer and the
record of it sends that event again (same ``webhook-id``, so receivers can de-duplicate).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.items import chunks
from data_plane.storage.messages.schema import (
    ERROR_LENGTH,
    event_outbox,
    outbound_leases,
    webhook_deliveries,
)

PENDING = 0
DELIVERED = 1
FAILED = 2
MESSAGE_CREATED = "message.created"
MAX_PREVIEW_BODY = 65_536
"""Bytes of a message body carried in its event; a longer one is cut (``truncated``)."""


def event_body(event_type: str, created_ms: int, data: dict[str, Any]) -> bytes:
    """The JSON every endpoint receives: ``{"type", "timestamp", "data"}``."""
    document = {"type": event_type, "timestamp": created_ms, "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def message_data(row: Sequence[Any]) -> dict[str, Any]:
    """A ``message.created`` event's data from a ``messages`` row (``MESSAGE_COLUMNS``)."""
    message_id, tenant, sender, receiver, group_id, group_seq, type_, body, extra = row[:9]
    client_msg_id, send_time = row[9], row[10]
    cut = bytes(body[:MAX_PREVIEW_BODY])
    return {
        "tenant": tenant,
        "message_id": str(message_id),
        "sender": sender,
        "receiver": receiver,
        "group_id": group_id,
        "group_seq": group_seq,
        "type": type_,
        "body": cut.decode("utf-8", "replace"),
        "truncated": len(body) > MAX_PREVIEW_BODY,
        "extra": extra,
        "client_msg_id": client_msg_id or "",
        "send_time": send_time,
    }


class OutboxWriter:
    """Writes ``message.created`` rows inside the send transaction.

    ``wants(tenant, event_type)`` must answer without suspending (the logic node's
    ``OutboundDirectory.wants``): tenants without a subscribed endpoint get no rows.
    """

    def __init__(self, wants: Callable[[str, str], bool]) -> None:
        self.wants = wants

    async def messages_created(
        self, conn: WriterConnection, message_rows: Sequence[Sequence[Any]], now_ms: int
    ) -> None:
        """One outbox row per stored message whose tenant wants the event."""
        rows = [
            (row[1], MESSAGE_CREATED, "", event_body(MESSAGE_CREATED, now_ms, message_data(row)))
            for row in message_rows
            if self.wants(row[1], MESSAGE_CREATED)
        ]
        if not rows:
            return
        mark = conn.mark
        await conn.executemany(
            "INSERT INTO event_outbox (tenant, event_type, endpoint_id, payload, created_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark})",
            [(*row, now_ms) for row in rows],
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One row of ``webhook_deliveries``."""

    id: int
    tenant: str
    endpoint_id: str
    event_id: int
    event_type: str
    payload: bytes
    status: int
    attempts: int
    next_attempt_at: int
    created_at: int
    finished_at: int
    last_status_code: int
    last_error: str
    latency_ms: int


Route = Callable[[str, str, str], list[str]]
"""(tenant, event_type, addressed endpoint or '') → the endpoint ids to deliver to."""


class Outbound:
    """The outbox, deliveries and leases of one message database (see the module doc)."""

    def __init__(self, pool: PooledConnections) -> None:
        self._pool = pool

    async def append(
        self, tenant: str, event_type: str, data: dict[str, Any], now_ms: int, endpoint_id: str = ""
    ) -> int:
        """Write one event (committed when this returns); its id."""
        body = event_body(event_type, now_ms, data)

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                insert(event_outbox).values(
                    tenant=tenant,
                    event_type=event_type,
                    endpoint_id=endpoint_id,
                    payload=body,
                    created_at=now_ms,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

        return await self._pool.write(work)

    async def has_events(self) -> bool:
        """Whether an event waits in the outbox. A read: it takes no write lock, so an
        idle dispatcher asking it never queues behind (or holds up) the message writer."""

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(select(event_outbox.c.id).limit(1))).first() is not None

        return await self._pool.read(work)

    async def fan_out(self, route: Route, now_ms: int, limit: int = 500) -> int:
        """Move up to ``limit`` outbox rows into deliveries; how many rows were moved."""

        async def work(conn: AsyncConnection) -> int:
            rows = (
                await conn.execute(
                    select(
                        event_outbox.c.id,
                        event_outbox.c.tenant,
                        event_outbox.c.event_type,
                        event_outbox.c.endpoint_id,
                        event_outbox.c.payload,
                    )
                    .order_by(event_outbox.c.id)
                    .limit(limit)
                    .with_for_update()
                )
            ).all()
            deliveries = [
                _new_delivery(row.id, row.tenant, endpoint, row.event_type, row.payload, now_ms)
                for row in rows
                for endpoint in route(row.tenant, row.event_type, row.endpoint_id)
            ]
            for chunk in chunks(deliveries):
                await conn.execute(insert(webhook_deliveries), list(chunk))
            for ids in chunks([row.id for row in rows]):
                await conn.execute(delete(event_outbox).where(event_outbox.c.id.in_(ids)))
            return len(rows)

        return await self._pool.write(work)

    async def lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew the lease ``name`` until ``now_ms + ttl_ms``; whether we hold it."""

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                update(outbound_leases)
                .where(
                    outbound_leases.c.name == name,
                    or_(outbound_leases.c.holder == holder, outbound_leases.c.expires_at < now_ms),
                )
                .values(holder=holder, expires_at=now_ms + ttl_ms)
            )
            if result.rowcount > 0:
                return True
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(outbound_leases).values(
                            name=name, holder=holder, expires_at=now_ms + ttl_ms
                        )
                    )
            except IntegrityError:
                return False  # held by another node
            return True

        return await self._pool.write(work)

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up if we hold it (a clean shutdown lets others take over)."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(outbound_leases).where(
                    outbound_leases.c.name == name, outbound_leases.c.holder == holder
                )
            )

        await self._pool.write(work)

    async def endpoints_due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """(tenant, endpoint) pairs with a pending delivery due by ``now_ms``."""

        async def work(conn: AsyncConnection) -> list[tuple[str, str]]:
            rows = await conn.execute(
                select(webhook_deliveries.c.tenant, webhook_deliveries.c.endpoint_id)
                .where(
                    webhook_deliveries.c.status == PENDING,
                    webhook_deliveries.c.next_attempt_at <= now_ms,
                )
                .group_by(webhook_deliveries.c.tenant, webhook_deliveries.c.endpoint_id)
                .limit(limit)
            )
            return [(row.tenant, row.endpoint_id) for row in rows]

        return await self._pool.read(work)

    async def head(self, tenant: str, endpoint_id: str, limit: int) -> list[Delivery]:
        """The endpoint's oldest pending deliveries, in queue order."""

        async def work(conn: AsyncConnection) -> list[Delivery]:
            rows = await conn.execute(
                select(webhook_deliveries)
                .where(
                    webhook_deliveries.c.tenant == tenant,
                    webhook_deliveries.c.endpoint_id == endpoint_id,
                    webhook_deliveries.c.status == PENDING,
                )
                .order_by(webhook_deliveries.c.id)
                .limit(limit)
            )
            return [Delivery(*row) for row in rows]

        return await self._pool.read(work)

    async def record(
        self,
        delivery_id: int,
        *,
        status: int,
        attempts: int,
        next_attempt_at: int,
        finished_at: int,
        status_code: int,
        error: str,
        latency_ms: int,
    ) -> None:
        """Record one attempt's outcome (and the delivery's new status)."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    status=status,
                    attempts=attempts,
                    next_attempt_at=next_attempt_at,
                    finished_at=finished_at,
                    last_status_code=status_code,
                    last_error=error[:ERROR_LENGTH],
                    latency_ms=latency_ms,
                )
            )

        await self._pool.write(work)

    async def clean(self, finished_before_ms: int, limit: int = 1000) -> int:
        """Delete up to ``limit`` deliveries finished before ``finished_before_ms``.

        They are found by a read; the write (which repeats the conditions, so a delivery
        redelivered meanwhile stays) runs only when there is something to delete."""
        done = (
            webhook_deliveries.c.status != PENDING,
            webhook_deliveries.c.finished_at < finished_before_ms,
        )

        async def find(conn: AsyncConnection) -> list[int]:
            ids = await conn.execute(select(webhook_deliveries.c.id).where(*done).limit(limit))
            return list(ids.scalars())

        found = await self._pool.read(find)
        if not found:
            return 0

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(found), *done)
            )
            return int(result.rowcount)

        return await self._pool.write(work)

    async def backlog(self) -> tuple[int, int]:
        """(outbox rows, pending deliveries): what the metrics show as queue depth."""

        async def work(conn: AsyncConnection) -> tuple[int, int]:
            outbox = await conn.scalar(select(func.count()).select_from(event_outbox))
            pending = await conn.scalar(
                select(func.count())
                .select_from(webhook_deliveries)
                .where(and_(webhook_deliveries.c.status == PENDING))
            )
            return int(outbox or 0), int(pending or 0)

        return await self._pool.read(work)


def _new_delivery(
    event_id: int, tenant: str, endpoint_id: str, event_type: str, payload: bytes, now_ms: int
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "endpoint_id": endpoint_id,
        "event_id": event_id,
        "event_type": event_type,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now_ms,
        "created_at": now_ms,
        "finished_at": 0,
        "last_status_code": 0,
        "last_error": "",
        "latency_ms": 0,
    }
