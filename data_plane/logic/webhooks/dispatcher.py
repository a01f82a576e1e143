"""The webhook dispatcher: outbox → deliveries → signed POSTs, in order per endpoint.

Theory of operation (the tables are ``data_plane.storage.messages.outbox``'s):

- Every logic node runs one dispatcher over each message database it has open (the
  shared one and dedicated tenants' ones). Each look (every ``poll_interval`` while
  idle, at once while there is work) fans the outbox out into per-endpoint deliveries —
  the fan-out is a write transaction, so it runs only once a read has found an event:
  an idle look takes no write lock that the message writer would wait for —
  only once the endpoint directory has been loaded, so no event is routed to nobody
  because this node has not heard of its endpoints yet — and starts a worker for every
  endpoint with a delivery due, unless one already runs here or ``concurrency`` workers
  are busy.
- A worker first takes the endpoint's lease (``webhook:{tenant}:{endpoint}``) in the
  database, then reads the queue, and renews the lease before every further attempt:
  while it is held no other node reads or sends that endpoint's queue, so deliveries
  leave in queue order and no attempt is repeated from a stale read. A worker whose
  node dies is replaced after the lease runs out (``lease_s``); the attempt it was
  making is made again (at least once; the ``webhook-id`` stays the same).
- The worker sends the queue's head and records the attempt. A 2xx delivers it; any
  other answer, a timeout or a refused connection schedules the head again after
  ``backoff(attempts)``, and nothing behind it is sent meanwhile. After
  ``max_attempts`` attempts or ``max_age_s`` the head is marked failed (visible over
  REST, redeliverable) and the queue moves on.
- Finished deliveries are deleted after ``retention_s`` (once a minute per database).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx
from anyio.abc import TaskGroup

from data_plane.cluster.outbound import OutboundDirectory
from data_plane.logic.outbound_metrics import OUTBOUND_BACKLOG, WEBHOOK_ATTEMPTS, WEBHOOK_SECONDS
from data_plane.logic.outbound_settings import OutboundSettings
from data_plane.logic.webhooks.signing import signed_headers
from data_plane.storage.errors import StorageError
from data_plane.storage.messages.outbox import DELIVERED, FAILED, PENDING, Delivery, Outbound
from data_plane.storage.messages.store import SqlMessageStore

log = logging.getLogger(__name__)

CLEAN_INTERVAL_S = 60.0
ERROR_BODY_CHARS = 200
"""Characters of an endpoint's error answer kept in ``last_error``."""


def holder_id(node_id: str) -> str:
    """A lease holder name unique to this process (a restarted node is a new holder)."""
    return f"{node_id}/{os.getpid()}/{secrets.token_hex(4)}"


class WebhookDispatcher:
    """Delivers the outboxes of ``databases()`` (see the module docstring)."""

    def __init__(
        self,
        databases: Callable[[], Sequence[SqlMessageStore]],
        directory: OutboundDirectory,
        settings: OutboundSettings,
        holder: str,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._databases = databases
        self._directory = directory
        self._settings = settings
        self._holder = holder
        self._client = client or httpx.AsyncClient(timeout=settings.timeout)
        self._clock = clock
        self._sleep = sleep
        self._active: set[tuple[int, str, str]] = set()
        self._last_clean: dict[int, float] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def run(self) -> None:
        """Look for work until cancelled; workers run in this task's task group."""
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    busy = False
                    for store in self._databases():
                        try:
                            busy = await self.look(store.outbound, tg) or busy
                        except StorageError as exc:
                            log.warning("webhook dispatch: message store unavailable: %s", exc)
                    await self._sleep(0 if busy else self._settings.poll_interval)
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()

    async def look(self, db: Outbound, tg: TaskGroup) -> bool:
        """Fan out, start workers for due endpoints, clean; whether rows were moved."""
        moved = 0
        if self._directory.loaded and await db.has_events():  # a read; the fan-out writes
            moved = await db.fan_out(self.route, self._now_ms(), self._settings.fan_out_batch)
        free = self._settings.concurrency - len(self._active)
        if free > 0:
            for tenant, endpoint_id in await db.endpoints_due(self._now_ms(), free * 2):
                key = (id(db), tenant, endpoint_id)
                if key in self._active or len(self._active) >= self._settings.concurrency:
                    continue
                self._active.add(key)
                tg.start_soon(self._worker, db, key)
        await self._clean(db)
        return moved > 0

    def route(self, tenant: str, event_type: str, addressed: str) -> list[str]:
        """The endpoints an outbox row goes to (``outbox.Route``)."""
        if addressed:  # a test event: the control plane checked the endpoint exists
            return [addressed]
        return [e.id for e in self._directory.endpoints(tenant) if e.wants(event_type)]

    async def _clean(self, db: Outbound) -> None:
        now = self._clock()
        if now - self._last_clean.get(id(db), 0.0) < CLEAN_INTERVAL_S:
            return
        self._last_clean[id(db)] = now
        retention_ms = int(self._settings.retention_s * 1000)
        await db.clean(self._now_ms() - retention_ms)
        outbox, pending = await db.backlog()
        OUTBOUND_BACKLOG.labels("outbox").set(outbox)
        OUTBOUND_BACKLOG.labels("deliveries").set(pending)

    async def _worker(self, db: Outbound, key: tuple[int, str, str]) -> None:
        _, tenant, endpoint_id = key
        try:
            await self.serve_endpoint(db, tenant, endpoint_id)
        except StorageError as exc:
            log.warning("webhook endpoint %s: message store unavailable: %s", endpoint_id, exc)
        finally:
            self._active.discard(key)

    async def serve_endpoint(self, db: Outbound, tenant: str, endpoint_id: str) -> None:
        """Send the endpoint's due deliveries in order while holding its lease."""
        lease = f"webhook:{tenant}:{endpoint_id}"
        lease_ms = int(self._settings.lease_s * 1000)
        try:
            while True:
                # The queue is read only while holding the lease, so it is never read
                # before another node's attempt on it is recorded (that would repeat it).
                if not await db.lease(lease, self._holder, self._now_ms(), lease_ms):
                    return  # another node serves this endpoint
                head = await db.head(tenant, endpoint_id, self._settings.endpoint_batch)
                if not head:
                    return
                for index, delivery in enumerate(head):
                    if delivery.next_attempt_at > self._now_ms():
                        return  # the head waits out its back-off; nothing overtakes it
                    renewed = index == 0 or await db.lease(
                        lease, self._holder, self._now_ms(), lease_ms
                    )
                    if not renewed or not await self._attempt(db, delivery):
                        return
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(StorageError):  # else it runs out by itself
                    await db.release(lease, self._holder)

    async def _attempt(self, db: Outbound, delivery: Delivery) -> bool:
        """One attempt at ``delivery``; whether the queue may move on (it finished)."""
        endpoint = self._directory.endpoint(delivery.tenant, delivery.endpoint_id)
        now_ms = self._now_ms()
        expired = now_ms - delivery.created_at >= self._settings.max_age_s * 1000
        if endpoint is None or not endpoint.enabled:
            # Not known here yet, deleted, or disabled: hold the queue until it expires.
            if expired and self._directory.loaded:
                await self._finish(db, delivery, FAILED, delivery.attempts, 0, "endpoint gone", 0)
                return True
            return False
        msg_id = f"evt_{delivery.event_id}"
        headers = signed_headers(endpoint.secret, msg_id, int(self._clock()), delivery.payload)
        started = time.monotonic()
        try:
            response = await self._client.post(
                endpoint.url, content=delivery.payload, headers=headers
            )
            code = response.status_code
            error = "" if 200 <= code < 300 else f"HTTP {code}: {response.text[:ERROR_BODY_CHARS]}"
        except httpx.HTTPError as exc:
            code, error = 0, f"{type(exc).__name__}: {exc}"[:ERROR_BODY_CHARS]
        elapsed = time.monotonic() - started
        WEBHOOK_SECONDS.observe(elapsed)
        latency_ms = int(elapsed * 1000)
        if not error:
            WEBHOOK_ATTEMPTS.labels("sent").inc()
            await self._finish(db, delivery, DELIVERED, delivery.attempts + 1, code, "", latency_ms)
            return True
        attempts = delivery.attempts + 1
        if attempts >= self._settings.max_attempts or expired:
            WEBHOOK_ATTEMPTS.labels("failed").inc()
            await self._finish(db, delivery, FAILED, attempts, code, error, latency_ms)
            return True
        WEBHOOK_ATTEMPTS.labels("retried").inc()
        retry_at = self._now_ms() + int(self._settings.backoff(attempts) * 1000)
        await db.record(
            delivery.id,
            status=PENDING,
            attempts=attempts,
            next_attempt_at=retry_at,
            finished_at=0,
            status_code=code,
            error=error,
            latency_ms=latency_ms,
        )
        return False

    async def _finish(
        self,
        db: Outbound,
        delivery: Delivery,
        status: int,
        attempts: int,
        code: int,
        error: str,
        latency: int,
    ) -> None:
        await db.record(
            delivery.id,
            status=status,
            attempts=attempts,
            next_attempt_at=delivery.next_attempt_at,
            finished_at=self._now_ms(),
            status_code=code,
            error=error,
            latency_ms=latency,
        )
