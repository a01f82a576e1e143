"""Coalesced ``HGETALL`` lookups: many concurrent callers, one round trip.

See ``redis`` (the module docstring) for why lookups are coalesced and how the lookup
task lives and dies with the store.
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
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    ReadOnlyError,
    OSError,
)


def _unavailable(exc: BaseException) -> SessionStoreUnavailable:
    error = SessionStoreUnavailable(f"redis session store unavailable: {exc}")
    error.__cause__ = exc
    return error


class _Lookup:
    """One caller's queued keys and the future that receives their ``HGETALL`` replies."""

    __slots__ = ("future", "keys")

    def __init__(self, keys: list[str], future: asyncio.Future[list[RawHash]]) -> None:
        self.keys = keys
        self.future = future


def _fail(lookup: _Lookup, error: BaseException) -> None:
    if not lookup.future.done():
        lookup.future.set_exception(error)


class LookupBatcher:
    """Coalesces concurrent ``HGETALL`` lookups into shared round trips (see the module
    docstring). ``fetch(keys)`` makes one round trip and returns every key's hash. At
    most one round trip is in flight; each carries up to ``batch_size`` distinct keys,
    and a caller's keys always travel together, so each caller's replies come from one
    round trip (each key still read atomically on its own).
    """

    def __init__(
        self, fetch: Callable[[list[str]], Awaitable[list[RawHash]]], batch_size: int
    ) -> None:
        self._fetch = fetch
        self._batch_size = batch_size
        self._queue: deque[_Lookup] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.round_trips = 0  # fetches made, for tests and curiosity

    @property
    def closed(self) -> bool:
        """True once ``aclose`` was called."""
        return self._closed

    async def lookup(self, keys: list[str]) -> list[RawHash]:
        """The ``HGETALL`` reply of every key, in order; at most ``batch_size`` keys."""
        if self._closed:
            raise SessionStoreUnavailable("the redis session store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[RawHash]] = loop.create_future()
        self._queue.append(_Lookup(keys, future))
        task = self._task
        if task is None or task.get_loop() is not loop:  # none, or left on a closed loop
            self._task = loop.create_task(self._run())
        return await future

    async def aclose(self) -> None:
        """Refuse new lookups, stop the lookup task and fail what is still queued."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while self._queue:
            _fail(
                self._queue.popleft(), SessionStoreUnavailable("the redis session store is closed")
            )

    async def _run(self) -> None:
        try:
            while self._queue:
                await self._round_trip(self._take())
        finally:
            if self._task is asyncio.current_task():
                self._task = None

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
            replies = await self._fetch(list(slots))
        except Exception as exc:
            for lookup in live:
                _fail(lookup, _unavailable(exc) if isinstance(exc, UNAVAILABLE) else exc)
            return
        except BaseException:  # cancelled by aclose: nobody will send these again
            for lookup in live:
                _fail(lookup, SessionStoreUnavailable("the redis session store is closed"))
            raise
        for lookup in live:
            if not lookup.future.done():
                lookup.future.set_result([replies[slots[key]] for key in lookup.keys])
