"""Group commit: many concurrent writes, one transaction.

Theory of operation: callers ``await batcher.submit(item)``. The item joins a FIFO
queue synchronously (no await before it is queued, so one task's items keep their
order) and the caller waits for its own result. A single writer task (``run``) takes up
to ``max_batch`` items — after lingering up to ``linger_s`` when it was idle, so a burst
arriving together shares one transaction — and calls ``flush(items)`` once. ``flush``
runs one transaction for the whole batch and returns one result per item, in order: a
value, or an exception meant for that caller only (a logical error such as a group the
sender is not in). While a flush runs, new items queue up and form the next batch, so
under load batches grow by themselves and the commit cost (an fsync) is shared.

If ``flush`` raises, the transaction did not commit (or its outcome is unknown) and
every caller of the batch gets ``MessageStoreUnavailable`` chained to the cause — never
a false success. A caller cancelled while waiting only stops waiting: its item may
still be written, exactly as if the answer had been lost on the network. The flush
itself is shielded from cancellation, so a shutdown lets the transaction in flight
finish and answers its callers truthfully.

Each caller waits on an asyncio future rather than an ``anyio.Event``: one is made per
message, and the Event (an anyio wrapper around an ``asyncio.Event`` and its waiter
future) cost several times as much. The message stores run on asyncio only (their
drivers are asyncio libraries), so nothing is lost by it.

The writer's wake-ups are asyncio futures too, and the linger is a timer of the event
loop's own (``call_later``) completing the batch's future: no task, no cancel scope and
no exception per batch (at low rates nearly every message is a batch of its own). A
``sleep`` given to the constructor times it instead — the linger ends when
``sleep(linger_s)`` returns or a full batch is waiting — so tests drive the timer rather
than the wall clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel

from data_plane.storage.errors import MessageStoreUnavailable

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LINGER_S = 0.001
DEFAULT_MAX_BATCH = 256


class _Pending(Generic[T, R]):
    """One queued item and the future that receives its outcome."""

    __slots__ = ("future", "item")

    def __init__(self, item: T, future: asyncio.Future[R]) -> None:
        self.item = item
        self.future = future

    def resolve(self, outcome: R | BaseException) -> None:
        """Hand the caller its outcome, unless it stopped waiting (cancelled)."""
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


def _wake(future: asyncio.Future[None]) -> None:
    """Complete ``future`` unless it already is (woken before, or cancelled)."""
    if not future.done():
        future.set_result(None)


def _unavailable(message: str, cause: BaseException | None) -> MessageStoreUnavailable:
    error = MessageStoreUnavailable(message)
    error.__cause__ = cause
    return error


class GroupCommitter(Generic[T, R]):
    """Batches ``submit``ted items into single ``flush`` calls run by ``run``.

    ``flush(items)`` must return exactly one result (value or exception) per item.
    ``sleep`` times the linger instead of the event loop (see the module docstring).
    ``flushes`` and ``flushed_items`` count what the writer did (for tests, metrics).
    """

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        linger_s: float = DEFAULT_LINGER_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self._flush = flush
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._sleep = sleep
        self._queue: deque[_Pending[T, R]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._full: asyncio.Future[None] | None = None
        self._closed = False
        self._running = False
        self._stopped = anyio.Event()
        self.flushes = 0
        self.flushed_items = 0

    @property
    def closed(self) -> bool:
        """True once ``close`` was called or the writer stopped."""
        return self._closed

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its committed result (or its error).

        Raises the item's own logical error, or ``MessageStoreUnavailable`` when the
        batch did not commit or the batcher is closed.
        """
        if self._closed:
            raise MessageStoreUnavailable("the message store is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        if self._wakeup is not None:
            _wake(self._wakeup)
        if self._full is not None and len(self._queue) >= self._max_batch:
            _wake(self._full)
        return await future

    def close(self) -> None:
        """Refuse new items; the writer flushes what is queued, then ``run`` returns."""
        self._closed = True
        if self._wakeup is not None:
            _wake(self._wakeup)
        if self._full is not None:
            _wake(self._full)

    async def wait_stopped(self) -> None:
        """Wait until ``run`` returned (immediately if it never started)."""
        if self._running:
            await self._stopped.wait()

    async def run(self) -> None:
        """The writer loop; returns after ``close`` once the queue is drained."""
        if self._running:
            raise RuntimeError("the writer is already running")
        self._running = True
        try:
            while True:
                idle = not self._queue
                while not self._queue:
                    if self._closed:
                        return
                    self._wakeup = asyncio.get_running_loop().create_future()
                    try:
                        await self._wakeup
                    finally:
                        self._wakeup = None
                if idle and self._linger_s > 0:
                    await self._linger()
                # The flush below is shielded: stop here when the writer was cancelled.
                await anyio.lowlevel.checkpoint_if_cancelled()
                count = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(count)]
                with anyio.CancelScope(shield=True):
                    await self._flush_batch(batch)
        finally:
            self._closed = True
            while self._queue:
                self._queue.popleft().resolve(_unavailable("the message store is closed", None))
            self._stopped.set()

    async def _linger(self) -> None:
        """Give a burst up to ``linger_s`` to arrive, unless a full batch is waiting."""
        if len(self._queue) >= self._max_batch or self._closed:
            return
        loop = asyncio.get_running_loop()
        full = self._full = loop.create_future()
        try:
            if self._sleep is None:
                timer = loop.call_later(self._linger_s, _wake, full)
                try:
                    await full
                finally:
                    timer.cancel()
            else:
                async with anyio.create_task_group() as expiry:
                    expiry.start_soon(self._expire, self._sleep, full)
                    await full
                    expiry.cancel_scope.cancel()
        finally:
            self._full = None

    async def _expire(
        self, sleep: Callable[[float], Awaitable[None]], full: asyncio.Future[None]
    ) -> None:
        """End the linger once the injected ``sleep`` has slept ``linger_s``."""
        await sleep(self._linger_s)
        _wake(full)

    async def _flush_batch(self, batch: list[_Pending[T, R]]) -> None:
        self.flushes += 1
        self.flushed_items += len(batch)
        try:
            results = await self._flush([pending.item for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush returned {len(results)} results for {len(batch)}")
        except Exception as exc:
            for pending in batch:
                pending.resolve(_unavailable(f"batch of {len(batch)} not stored: {exc!r}", exc))
            return
        except BaseException as exc:
            for pending in batch:
                pending.resolve(_unavailable("the batch was interrupted", exc))
            raise
        for pending, outcome in zip(batch, results, strict=True):
            pending.resolve(outcome)
