"""Coalesced ``HGETALL`` lookups: many concurrent callers, one round trip, a deadline.

See ``redis`` (the module docstring) for why lookups are coalesced and how the lookup
task lives and dies with the store; ``redis_masters`` runs one batcher per
Redis Cluster master.

Bounds. Every lookup gets a deadline, ``timeout`` after it queued. Queued lookups
keep their order, so deadlines only grow along the queue, and the oldest lookup of a
round trip has the earliest one: a round trip is abandoned at that deadline (retries
of the client included; the client closes the connection it abandons), and lookups
whose deadline passed while they queued are failed before the next round trip is
taken. So a lookup answers or raises ``SessionStoreUnavailable`` by its deadline
(plus event-loop scheduling), whatever the server does, and a caller queued behind a
stalled round trip never waits for that one and then for a whole one of its own.
This costs one timer per round trip, not one per caller (a timer per caller cost
more CPU than the rest of a coalesced lookup). The module is asyncio-only because the
redis client is.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from redis.exceptions import ClusterDownError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.redis_codec import RawHash

# Errors meaning "the backend is down, unreachable or failing over", not "bad request".
# The builtin TimeoutError (a deadline of ours ran out) is an OSError.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    ReadOnlyError,
    OSError,
)

Fetch = Callable[[list[str]], Awaitable[list[RawHash]]]
"""One round trip: every key's ``HGETALL`` reply, in order."""


def unavailable(exc: BaseException) -> SessionStoreUnavailable:
    """A fresh ``SessionStoreUnavailable`` caused by ``exc`` (one per caller: never share
    an exception object between tasks, its traceback grows in each)."""
    if isinstance(exc, TimeoutError) and not str(exc):
        message = "redis session store unavailable: no answer within the deadline"
    else:
        message = f"redis session store unavailable: {exc}"
    error = SessionStoreUnavailable(message)
    error.__cause__ = exc
    return error


def closed() -> SessionStoreUnavailable:
    return SessionStoreUnavailable("the redis session store is closed")


class _Lookup:
    """One caller's queued keys, the future that receives their ``HGETALL`` replies,
    and the loop time by which it must be settled."""

    __slots__ = ("deadline", "future", "keys")

    def __init__(
        self, keys: list[str], future: asyncio.Future[list[RawHash]], deadline: float
    ) -> None:
        self.keys = keys
        self.future = future
        self.deadline = deadline


def _fail(lookup: _Lookup, error: BaseException) -> None:
    if not lookup.future.done():
        lookup.future.set_exception(error)


class LookupBatcher:
    """Coalesces concurrent ``HGETALL`` lookups into shared round trips (see the module
    docstring). ``fetch(keys)`` makes one round trip and returns every key's hash. At
    most one round trip is in flight; each carries up to ``batch_size`` distinct keys,
    and a caller's keys always travel together, so each caller's replies come from one
    round trip (each key still read atomically on its own). Every lookup is settled
    within ``timeout`` seconds of being queued (see the module docstring).
    """

    def __init__(self, fetch: Fetch, batch_size: int, timeout: float) -> None:
        self._fetch = fetch
        self._batch_size = batch_size
        self._timeout = timeout
        self._queue: deque[_Lookup] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.round_trips = 0  # fetches made, for tests and curiosity

    @property
    def closed(self) -> bool:
        """True once ``aclose`` was called."""
        return self._closed

    @property
    def idle(self) -> bool:
        """Nothing queued and no round trip in flight."""
        return not self._queue and self._task is None

    def submit(self, keys: list[str]) -> asyncio.Future[list[RawHash]]:
        """Queue ``keys`` (at most ``batch_size``); the future gets their replies, in
        order, or ``SessionStoreUnavailable``, within ``timeout``. Cancel the future to
        stop waiting."""
        if self._closed:
            raise closed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[RawHash]] = loop.create_future()
        self._queue.append(_Lookup(keys, future, loop.time() + self._timeout))
        task = self._task
        if task is None or task.get_loop() is not loop:  # none, or left on a closed loop
            self._task = loop.create_task(self._run())
        return future

    async def lookup(self, keys: list[str]) -> list[RawHash]:
        """The ``HGETALL`` reply of every key, in order; at most ``batch_size`` keys.
        Raises ``SessionStoreUnavailable`` within ``timeout`` when there is none."""
        return await self.submit(keys)

    async def aclose(self) -> None:
        """Refuse new lookups, stop the lookup task and fail what is still queued."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while self._queue:
            _fail(self._queue.popleft(), closed())

    async def _run(self) -> None:
        try:
            while self._queue:
                self._expire()
                if self._queue:
                    await self._round_trip(self._take())
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _expire(self) -> None:
        """Fail the queued lookups whose deadline passed (they are at the front)."""
        now = asyncio.get_running_loop().time()
        queue = self._queue
        while queue and queue[0].deadline <= now:
            lookup = queue.popleft()
            _fail(lookup, unavailable(TimeoutError()))

    def _take(self) -> list[_Lookup]:
        """Queued lookups (oldest first) whose keys fit in one round trip."""
        batch = [self._queue.popleft()]
        distinct = len(batch[0].keys)
        while self._queue and distinct + len(self._queue[0].keys) <= self._batch_size:
            lookup = self._queue.popleft()
            batch.append(lookup)
            distinct += len(lookup.keys)
        return batch

    async def _round_trip(self, batch: list[_Lookup]) -> None:
        live = [lookup for lookup in batch if not lookup.future.done()]  # not cancelled
        if not live:
            return
        slots: dict[str, int] = {}
        for lookup in live:
            for key in lookup.keys:
                slots.setdefault(key, len(slots))
        self.round_trips += 1
        try:
            async with asyncio.timeout_at(live[0].deadline):  # the earliest of them
                replies = await self._fetch(list(slots))
        except Exception as exc:
            for lookup in live:
                _fail(lookup, unavailable(exc) if isinstance(exc, UNAVAILABLE) else exc)
            return
        except BaseException:  # cancelled by aclose: nobody will send these again
            for lookup in live:
                _fail(lookup, closed())
            raise
        for lookup in live:
            if not lookup.future.done():
                lookup.future.set_result([replies[slots[key]] for key in lookup.keys])
