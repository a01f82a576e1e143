"""A message-store writer: a queue, one transaction per batch, one connection of its own.

The write path, top to bottom (sends and acks alike)::

    store.send_user_message(…)                  check the arguments, build the item
      └ BatchWriter.submit(item)                queue it (group_commit.GroupCommitter)
          └ BatchWriter.flush(items)            the writer task: one batch at a time
              └ BatchWriter.commit(items)       one transaction, again on a conflict
                  └ WriterLink.transaction(work.write, items)
                      └ work.write(conn, items) the batch's statements (sends.SendWrites,
                                                acks.AckWrites), one result per item

``flush`` isolates a poisoned batch: if its transaction fails for any reason other than
a connection failure — a value the database refuses, a key that keeps conflicting — the
items are committed again one by one in batch order, so only the offending item's
caller gets ``MessageStoreUnavailable``. A connection failure fails the whole batch
(``GroupCommitter`` answers every caller ``MessageStoreUnavailable``: never a false
success).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.engine import Retrying, connection_failure
from data_plane.storage.messages.group_commit import (
    DEFAULT_LINGER_S,
    DEFAULT_MAX_BATCH,
    GroupCommitter,
)
from data_plane.storage.messages.link import WriterLink

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class BatchWork(Protocol[T_contra, R_co]):
    """What one writer writes: a batch's statements on the writer's connection."""

    async def write(
        self, conn: WriterConnection, items: Sequence[T_contra]
    ) -> Sequence[R_co | BaseException]:
        """Decide and write ``items`` inside the open transaction; one result per item
        (a value, or the logical error meant for that item's caller)."""
        ...


class BatchWriter(Generic[T, R]):
    """Queues items and commits them in batches through ``work`` (see the module docstring).

    ``run`` must be running while items are submitted. ``link`` is the connection this
    writer holds; ``retrying`` is shared with the rest of the store.
    """

    def __init__(
        self,
        work: BatchWork[T, R],
        link: WriterLink,
        retrying: Retrying,
        *,
        linger_s: float = DEFAULT_LINGER_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.work = work
        """The batch's statements; ``work.write`` is looked up at every transaction."""
        self.link = link
        self._retrying = retrying
        self._queue: GroupCommitter[T, R] = GroupCommitter(
            self.flush, linger_s=linger_s, max_batch=max_batch, sleep=sleep
        )

    @property
    def flushes(self) -> int:
        """Batches flushed so far (one transaction each, retries and isolation aside)."""
        return self._queue.flushes

    async def submit(self, item: T) -> R:
        """Queue ``item``; its committed result, or its error (see ``GroupCommitter``)."""
        return await self._queue.submit(item)

    async def run(self) -> None:
        """The writer loop; returns after ``close`` once the queue is drained."""
        await self._queue.run()

    def close(self) -> None:
        """Refuse new items; what is queued is still written."""
        self._queue.close()

    async def aclose(self) -> None:
        """Wait for the writer loop to stop, then close the connection."""
        await self._queue.wait_stopped()
        await self.link.aclose()

    async def flush(self, items: Sequence[T]) -> list[R | BaseException]:
        """One transaction for the batch; if an item poisons it, one per item."""
        try:
            return await self.commit(items)
        except Exception as exc:
            if len(items) == 1 or connection_failure(exc):
                raise
        outcomes: list[R | BaseException] = []
        for item in items:
            try:
                outcomes.extend(await self.commit((item,)))
            except Exception as exc:
                if connection_failure(exc):
                    raise
                error = MessageStoreUnavailable(f"not stored: {exc!r}")
                error.__cause__ = exc
                outcomes.append(error)
        return outcomes

    async def commit(self, items: Sequence[T]) -> list[R | BaseException]:
        """``items`` written and committed in one transaction, run again on a conflict."""
        return await self._retrying.run(self._transaction, items)

    async def _transaction(self, items: Sequence[T]) -> list[R | BaseException]:
        return list(await self.link.transaction(self.work.write, items))
