"""The push dispatcher: due jobs → the tenant's provider.

Theory of operation: each logic node looks at every message database it has open every
``poll_interval``. A look first reads whether any job is due; only then does it take or
renew the database's ``push`` lease (``lease_s``; a write, so an idle look takes no write
lock that the message writer would wait for), and the node holding it re-reads and
takes up to ``push_batch`` due jobs (``due_at`` passed: the collapse
window of their first message is over) and sends them, at most ``concurrency`` at a
time — unless the account has an online device by then (the session store says so),
which drops the job. A sign-in cancels pending jobs (``offline.OfflineNotifier.online``);
this check also covers a job queued just after that sign-in by a message whose session
lookup still found nobody. A sent job is finished (deleted, or reduced to the messages
that arrived while it was being sent); a job whose provider answered 429, 5xx or nothing
is tried again after ``backoff(attempts)`` until ``max_attempts``; other answers (a bad
token) and tenants that removed their provider drop the job, and a 404 or 410 (the
provider no longer knows the token) also unregisters the token. A job is never sent twice
at once: only the lease holder sends, and it waits for its sends before its next look.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx

from data_plane.cluster.outbound import OutboundDirectory
from data_plane.logic.notify.providers import build_request, retryable
from data_plane.logic.outbound_metrics import PUSH_ATTEMPTS, PUSH_SECONDS
from data_plane.logic.outbound_settings import OutboundSettings
from data_plane.storage.errors import StorageError
from data_plane.storage.messages.push_queue import PushJob, PushQueue
from data_plane.storage.messages.store import SqlMessageStore
from data_plane.storage.sessions.protocol import SessionStore

log = logging.getLogger(__name__)

PUSH_LEASE = "push"
STALE_TOKEN = frozenset({404, 410})
"""Provider answers meaning the token is gone (FCM: 404 ``UNREGISTERED``); the device's
token is then unregistered, so later messages are not sent to it again."""


class PushDispatcher:
    """Sends the due push jobs of ``databases()`` (see the module docstring)."""

    def __init__(
        self,
        databases: Callable[[], Sequence[SqlMessageStore]],
        directory: OutboundDirectory,
        settings: OutboundSettings,
        holder: str,
        sessions: SessionStore,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._databases = databases
        self._directory = directory
        self._settings = settings
        self._holder = holder
        self._sessions = sessions
        self._client = client or httpx.AsyncClient(timeout=settings.timeout)
        self._clock = clock
        self._sleep = sleep
        self._limiter = anyio.CapacityLimiter(settings.concurrency)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def run(self) -> None:
        """Look for due jobs until cancelled."""
        try:
            while True:
                busy = False
                for store in self._databases():
                    try:
                        busy = await self.look(store) or busy
                    except StorageError as exc:
                        log.warning("push dispatch: message store unavailable: %s", exc)
                await self._sleep(0 if busy else self._settings.poll_interval)
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()

    async def look(self, store: SqlMessageStore) -> bool:
        """Send what is due in one database if we hold its lease; whether we sent any."""
        if not self._directory.loaded:
            return False
        queue = store.push_queue
        if not await queue.due(self._now_ms(), 1):  # a read: idle looks write nothing
            return False
        lease_ms = int(self._settings.lease_s * 1000)
        if not await store.outbound.lease(PUSH_LEASE, self._holder, self._now_ms(), lease_ms):
            return False
        jobs = await queue.due(self._now_ms(), self._settings.push_batch)
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(self._send_limited, queue, job)
        return bool(jobs)

    async def _send_limited(self, queue: PushQueue, job: PushJob) -> None:
        async with self._limiter:
            try:
                await self.send(queue, job)
            except StorageError as exc:
                log.warning("push job of %s not recorded: %s", job.account, exc)

    async def _online(self, job: PushJob) -> bool:
        """Whether the account has an online device now (then the job is moot); when the
        session store cannot tell, the notification is sent (better twice than never)."""
        try:
            return bool(await self._sessions.get_locations(job.tenant, job.account))
        except StorageError:
            return False

    async def send(self, queue: PushQueue, job: PushJob) -> None:
        """Send one job and record the outcome."""
        provider = self._directory.provider(job.tenant)
        if provider is None:
            await queue.drop(job)
            return
        if await self._online(job):
            PUSH_ATTEMPTS.labels("cancelled").inc()
            await queue.drop(job)
            return
        url, headers, body = build_request(provider, job)
        started = time.monotonic()
        try:
            response = await self._client.post(url, json=body, headers=headers)
            code = response.status_code
        except httpx.HTTPError as exc:
            code = 0
            log.info("push provider %s unreachable: %s", url, exc)
        PUSH_SECONDS.observe(time.monotonic() - started)
        if 200 <= code < 300:
            PUSH_ATTEMPTS.labels("sent").inc()
            await queue.finish(job, self._now_ms(), provider.collapse_ms)
            return
        attempts = job.attempts + 1
        if retryable(code) and attempts < self._settings.max_attempts:
            PUSH_ATTEMPTS.labels("retried").inc()
            delay_ms = int(self._settings.backoff(attempts) * 1000)
            await queue.retry(job, self._now_ms() + delay_ms)
            return
        PUSH_ATTEMPTS.labels("failed").inc()
        log.warning("push to %s/%s failed for good (HTTP %s)", job.tenant, job.account, code)
        if code in STALE_TOKEN:  # the provider no longer knows this token: forget it
            await queue.unregister(job.tenant, job.account, job.device, job.token)
        await queue.drop(job)
