"""Pick the message store a process was configured with: memory or SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from data_plane.storage.messages.group_commit import DEFAULT_LINGER_S, DEFAULT_MAX_BATCH
from data_plane.storage.messages.memory import MemoryMessageStore
from data_plane.storage.messages.protocol import MEMORY_URL, MessageStore
from data_plane.storage.messages.store import open_sql_message_store


@asynccontextmanager
async def open_message_store(
    url: str | None,
    *,
    node_id: int,
    linger_s: float = DEFAULT_LINGER_S,
    max_batch: int = DEFAULT_MAX_BATCH,
    pool_size: int = 10,
) -> AsyncIterator[MessageStore]:
    """The message store for ``url``: None or ``memory://`` → memory, else SQL."""
    if url is None or url == MEMORY_URL:
        memory = MemoryMessageStore(node_id=node_id)
        try:
            yield memory
        finally:
            await memory.aclose()
        return
    async with open_sql_message_store(
        url, node_id=node_id, linger_s=linger_s, max_batch=max_batch, pool_size=pool_size
    ) as store:
        yield store
