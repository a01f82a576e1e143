"""Session lookups on Redis (Cluster): one coalescing batcher per master.

Theory of operation. Each account's hash lives in one slot, owned by one master. A
lookup's keys are grouped by the master that owns their slot (the client's slot map,
which follows ``MOVED`` redirects and topology refreshes), and each group joins that
master's :class:`~data_plane.storage.sessions.redis_lookups.LookupBatcher`: concurrent
lookups are still coalesced, into one pipeline per master, and the masters' pipelines
run concurrently and independently. A master that stalls or dies therefore stalls only
the keys in its slots: lookups of the other masters' keys neither wait for it nor fail
with it. (With one pipeline for every master, one frozen master failed every lookup of
the node for as long as it was frozen.)

Each caller waits at most ``timeout`` for all of its groups together (each batcher
settles every lookup within ``timeout`` of its queueing), and gets every
key's reply or, for the keys of a master that did not answer in time, that master's
``SessionStoreUnavailable``. The pipeline of a group is the client's own, so a slot
that moved meanwhile is still read from its new owner (``MOVED``/``ASK`` are followed
per command) and a connection or timeout error asks the client for a topology refresh;
a round trip abandoned at the deadline closes its connection, so nothing stale is left
behind once the master answers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.redis_codec import RawHash
from data_plane.storage.sessions.redis_lookups import (
    Fetch,
    LookupBatcher,
    closed,
    unavailable,
)

_UNROUTED = ""
"""The batcher of a single server, and on a cluster of keys whose slot has no known
owner yet (the client's pipeline finds it)."""

_MAX_IDLE_BATCHERS = 64
"""Batchers of masters that left the topology are dropped beyond this many."""

Reply: TypeAlias = "RawHash | SessionStoreUnavailable"
"""One key's ``HGETALL`` reply, or why its master gave none."""


class MasterLookups:
    """Per-master coalesced lookups (see the module docstring).

    ``client`` is the cluster client whose slot map routes keys to masters, or None for
    a single server (one master, one batcher). ``fetch(keys)`` makes one round trip for
    keys that (as far as the slot map knows) live on one master; ``batch_size`` bounds
    the keys per round trip and ``timeout`` a caller's wait, in seconds.
    """

    def __init__(
        self, client: RedisCluster | None, fetch: Fetch, batch_size: int, timeout: float
    ) -> None:
        self._client = client
        self._fetch = fetch
        self._batch_size = batch_size
        self._timeout = timeout
        self._batchers: dict[str, LookupBatcher] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``aclose`` was called."""
        return self._closed

    @property
    def round_trips(self) -> int:
        """Round trips made by every master's batcher (for tests)."""
        return sum(batcher.round_trips for batcher in self._batchers.values())

    def master_of(self, key: str) -> str:
        """The name (``host:port``) of the master the slot map gives ``key`` to."""
        if self._client is None:
            return _UNROUTED
        try:
            node = self._client.nodes_manager.get_node_from_slot(key_slot(key.encode()))
        except RedisError:  # not covered (yet): the pipeline asks the cluster
            return _UNROUTED
        return str(node.name)

    async def lookup(self, keys: list[str]) -> Sequence[Reply]:
        """Every key's reply, in order; the keys of a master that failed or did not
        answer within ``timeout`` get its ``SessionStoreUnavailable`` instead."""
        if self._closed:
            raise closed()
        if not keys:
            return []
        groups: dict[str, list[int]] = {}
        if self._client is None:
            if len(keys) <= self._batch_size:  # the hot path on a single server
                return await self._batcher(_UNROUTED).submit(keys)
            groups[_UNROUTED] = list(range(len(keys)))
        else:
            for index, key in enumerate(keys):
                groups.setdefault(self.master_of(key), []).append(index)
        if len(groups) == 1 and len(keys) <= self._batch_size:
            # The common case (one account, or a few on one master): one future.
            (master,) = groups
            try:
                return await self._batcher(master).submit(keys)
            except SessionStoreUnavailable as exc:
                return [exc] * len(keys)
        # Each master's chunks go to its own batcher, which settles each within
        # ``timeout``; all are awaited together, so a stalled master costs this caller
        # ``timeout`` at most, and the other masters' replies are kept.
        pending: list[tuple[list[int], asyncio.Future[list[RawHash]]]] = []
        for master, indices in groups.items():
            for start in range(0, len(indices), self._batch_size):
                chunk = indices[start : start + self._batch_size]
                future = self._batcher(master).submit([keys[i] for i in chunk])
                pending.append((chunk, future))
        futures = [future for _, future in pending]
        try:
            await asyncio.wait(futures)
        finally:
            for future in futures:
                future.cancel()  # a no-op once settled; when we are cancelled, stop waiting
        replies: list[Reply] = [{}] * len(keys)
        for chunk, future in pending:
            outcome = _outcome(future)
            for position, index in enumerate(chunk):
                replies[index] = outcome if isinstance(outcome, Exception) else outcome[position]
        return replies

    def only_batcher(self) -> LookupBatcher | None:
        """A single server's one batcher; None on a cluster."""
        return self._batcher(_UNROUTED) if self._client is None else None

    def _batcher(self, master: str) -> LookupBatcher:
        batcher = self._batchers.get(master)
        if batcher is None:
            if len(self._batchers) >= _MAX_IDLE_BATCHERS:
                for name in [n for n, b in self._batchers.items() if b.idle]:
                    del self._batchers[name]
            batcher = LookupBatcher(self._fetch, self._batch_size, self._timeout)
            self._batchers[master] = batcher
        return batcher

    async def aclose(self) -> None:
        """Refuse new lookups; stop every master's lookup task, failing what is queued."""
        self._closed = True
        await asyncio.gather(*(batcher.aclose() for batcher in self._batchers.values()))


def _outcome(future: asyncio.Future[list[RawHash]]) -> list[RawHash] | SessionStoreUnavailable:
    """A settled future's replies or error."""
    if future.cancelled():
        return unavailable(TimeoutError())
    error = future.exception()
    if error is None:
        return future.result()
    if isinstance(error, SessionStoreUnavailable):
        return error
    raise error
