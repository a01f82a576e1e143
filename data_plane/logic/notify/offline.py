"""Queueing notifications for receivers with no online device, and cancelling them.

When: right after a stored message has been pushed (``handlers/chat.py``,
``handlers/group.py``), a session lookup of its recipients finds those with no online
device, and a job is queued for each of their tokens — not inside the send
transaction: whether a receiver is online is only known from the session store, and a
lookup inside the transaction would hold the inbox locks across a round trip to Redis.
The cost: a node killed between the commit and the queue write loses that notification
(never the message, which the device syncs when it next connects); a lookup or queue
write that fails is logged and counted (``lost``). The lookup is this module's own (the
pusher's is not shared), so only tenants with a push provider pay for it.

A receiver who signs in cancels its pending jobs (``online``), and the dispatcher drops
a job whose account is online by send time, so nothing is sent to a device that is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from data_plane.cluster.outbound import OutboundDirectory
from data_plane.logic.outbound_metrics import PUSH_ATTEMPTS
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.errors import StorageError
from data_plane.storage.messages.push_queue import PushQueue
from data_plane.storage.messages.store import SqlMessageStore
from data_plane.storage.sessions.protocol import SessionStore

log = logging.getLogger(__name__)


class OfflineNotifier:
    """Queues and cancels push jobs in the tenant's message database."""

    def __init__(
        self,
        stores: TenantStores,
        directory: OutboundDirectory,
        sessions: SessionStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stores = stores
        self._directory = directory
        self._sessions = sessions
        self._clock = clock

    async def queue_of(self, tenant: str) -> PushQueue | None:
        """The tenant's push queue (None on the in-memory store)."""
        store = await self._stores.get(tenant)
        return store.push_queue if isinstance(store, SqlMessageStore) else None

    async def offline(
        self,
        tenant: str,
        accounts: Sequence[str],
        *,
        sender: str,
        group_id: str,
        message_id: int,
        preview: str,
    ) -> None:
        """Queue a notification for every token of those ``accounts`` with no online
        device."""
        provider = self._directory.provider(tenant)
        if provider is None or not accounts:
            return
        try:
            queue = await self.queue_of(tenant)
            if queue is None:
                return
            online = await self._sessions.get_locations_many(tenant, accounts)
            offline = [a for a in accounts if not online.get(a)]
            if not offline:
                return
            queued = await queue.queue(
                tenant,
                offline,
                sender=sender,
                group_id=group_id,
                message_id=message_id,
                preview=preview,
                now_ms=int(self._clock() * 1000),
                collapse_ms=provider.collapse_ms,
            )
        except StorageError as exc:
            PUSH_ATTEMPTS.labels("lost").inc(len(accounts))
            log.warning("push notification of tenant %s not queued: %s", tenant, exc)
            return
        PUSH_ATTEMPTS.labels("queued").inc(queued)

    async def online(self, tenant: str, account: str) -> None:
        """The account signed in: cancel its pending notifications."""
        if self._directory.provider(tenant) is None:
            return
        try:
            queue = await self.queue_of(tenant)
            if queue is not None:
                PUSH_ATTEMPTS.labels("cancelled").inc(await queue.cancel(tenant, account))
        except StorageError as exc:
            log.warning("pending notifications of %s not cancelled: %s", account, exc)
