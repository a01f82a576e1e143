"""Events that are not messages: logins, logouts, kickouts and group changes.

Each is written to the tenant's outbox in a transaction of its own the moment it has
happened (after the session store or the group tables changed, before the handler
returns), and only when one of the tenant's endpoints wants it, so a tenant without
webhooks pays nothing. The write is durable once ``record`` returns; if the message
store is down the event is lost, which is logged and counted
(``cirno_webhook_events_total{result="lost"}``): the login or group change it
describes has already happened and is not undone for it. ``message.created`` is not
written here: it commits with its message (``storage.messages.outbox.OutboxWriter``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from data_plane.cluster.outbound import OutboundDirectory
from data_plane.logic.outbound_metrics import WEBHOOK_EVENTS
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.errors import StorageError
from data_plane.storage.messages.store import SqlMessageStore

log = logging.getLogger(__name__)


class EventRecorder:
    """Writes non-message events to the outbox of the tenant's message database."""

    def __init__(
        self,
        stores: TenantStores,
        directory: OutboundDirectory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stores = stores
        self._directory = directory
        self._clock = clock

    async def record(self, tenant: str, event_type: str, data: dict[str, Any]) -> None:
        """Write ``event_type`` with ``data`` if the tenant wants it (see the module doc)."""
        if not self._directory.wants(tenant, event_type):
            return
        try:
            store = await self._stores.get(tenant)
            if not isinstance(store, SqlMessageStore):
                return  # the in-memory store keeps no outbox
            now_ms = int(self._clock() * 1000)
            await store.outbound.append(tenant, event_type, {"tenant": tenant, **data}, now_ms)
        except StorageError as exc:
            WEBHOOK_EVENTS.labels("lost").inc()
            log.warning("%s event of tenant %s not recorded: %s", event_type, tenant, exc)
            return
        WEBHOOK_EVENTS.labels("written").inc()
