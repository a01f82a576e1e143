"""Which message store holds a tenant's messages: the shared one or its own.

A ``dedicated`` tenant has its own database URL (from the control plane, through the
tenant directory). Its store is opened on first use, after migrating that database's
message tables to head (``storage.messages.migrate``: the message tables only, none of
the control plane's), and stays open for the life of the logic node. A tenant the directory does not
know (the control plane has not been reached yet) is refused rather than guessed: a
message written to the wrong database would be invisible to its readers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from data_plane.cluster.tenants import TenantDirectory
from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.messages import migrate
from data_plane.storage.messages.factory import open_message_store
from data_plane.storage.messages.protocol import MessageStore

log = logging.getLogger(__name__)


class TenantStores:
    """Message stores per tenant, on top of the shared store."""

    def __init__(
        self,
        shared: MessageStore,
        directory: TenantDirectory | None,
        task_group: TaskGroup,
        *,
        node_id: int,
        check_writable: Callable[[], None] = lambda: None,
    ) -> None:
        self._check_writable = check_writable
        self._shared = shared
        self._directory = directory
        self._tg = task_group
        self._node_id = node_id
        self._dedicated: dict[str, MessageStore] = {}
        self._lock = anyio.Lock()
        self.on_open: Callable[[MessageStore], None] = lambda store: None
        """Called with each dedicated store as it opens (outbound wiring, ``main``)."""

    def opened(self) -> list[MessageStore]:
        """The shared store and every dedicated store opened so far."""
        return [self._shared, *self._dedicated.values()]

    async def get(self, tenant: str, *, write: bool = False) -> MessageStore:
        """The store of ``tenant``; with ``write``, only while this node may create
        messages (raises ``MessageStoreUnavailable`` otherwise).

        For a tenant already seen this returns without suspending, so requests queued
        in arrival order reach the store's group commit in that order.
        """
        if write:
            self._check_writable()
        if self._directory is None:
            return self._shared
        info = await self._directory.lookup(tenant)
        if info is None:
            raise MessageStoreUnavailable(f"tenant {tenant!r} is not known to this node yet")
        if info.database_url is None:
            return self._shared
        store = self._dedicated.get(info.database_url)
        if store is not None:
            return store
        async with self._lock:
            store = self._dedicated.get(info.database_url)
            if store is None:
                store = await self._tg.start(self._serve_dedicated, info.database_url)
                self._dedicated[info.database_url] = store
        return store

    async def _serve_dedicated(
        self, url: str, *, task_status: TaskStatus[MessageStore] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await anyio.to_thread.run_sync(migrate.upgrade, url)
        except Exception as exc:
            raise MessageStoreUnavailable(f"dedicated database unavailable: {exc}") from exc
        log.info("opened a dedicated message store")
        async with open_message_store(url, node_id=self._node_id) as store:
            self.on_open(store)
            task_status.started(store)
            await anyio.sleep_forever()
