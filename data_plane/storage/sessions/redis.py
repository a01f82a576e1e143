"""Redis (and Redis Cluster) implementations of the storage Protocols.

Session layout: one hash per account, ``{prefix}:loc:{<tenant>:<account>}``, field = the
device, value = the location without the parts the key and field already say, as a
compact JSON array ``[channel_id, gateway_id, login_at, client_version, zone]`` (trailing
empty strings dropped). The ``{…}`` hash tag puts everything of one account in one
Redis Cluster slot; ``%``, ``:``, ``{`` and ``}`` in tenant and account are
percent-escaped, so the tag is never cut short and no two (tenant, account) pairs share
a key. Every command and script touches one key, and batches are non-transactional
pipelines, so the same code runs on a single Redis and on Redis Cluster — with one
exception: on a single server, a batch of lookups is one read-only script call that
returns every key's hash (``_GET_MANY_LUA``), because redis-py spent ~10 µs of CPU per
command packing and parsing a pipeline against ~1 µs per key for one script call. A
cluster spreads the keys over slots, so there the batch is a pipeline per master.

Lookups are coalesced. Every message a logic node stores is followed by a lookup of
its receiver's locations; one pipeline round trip per message cost more CPU than the
rest of the push (a pooled connection, a timeout, a ``write`` and a parse each). So
``get_locations`` and small ``get_locations_many`` calls queue their keys and one
*lookup task* fetches everything queued in one round trip (the script call, or a
pipeline on a cluster), hands each caller its own replies, and repeats while callers
queued up during the round trip: under load one
round trip serves hundreds of concurrent pushes, and a lone lookup costs one round trip
as before. The task is an asyncio task (the redis client is asyncio-only) owned by the
store: started when the first lookup queues, ended when the queue is empty, cancelled
and awaited by :meth:`RedisSessionStore.aclose`, which fails whatever is still queued
with ``SessionStoreUnavailable``. A caller that is cancelled only stops waiting.

On Redis Cluster there is one queue and one lookup task per master
(``redis_masters``), so a master that stalls or dies fails only the lookups of the
accounts in its slots; ``get_locations_many`` then raises ``LocationsUnavailable`` with
the locations it did find. Every call is bounded by ``timeout`` (``redis_options``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeAlias

import anyio
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from data_plane.storage.errors import SessionStoreUnavailable, UnsupportedSessionStoreURL
from data_plane.storage.sessions.protocol import Location, LocationsUnavailable
from data_plane.storage.sessions.redis_codec import (
    DECODED_CACHE_SIZE,
    LocationDecoder,
    RawHash,
    decode,
    encode,
    escape,
)
from data_plane.storage.sessions.redis_lookups import UNAVAILABLE, closed, unavailable
from data_plane.storage.sessions.redis_masters import MasterLookups
from data_plane.storage.sessions.redis_options import RedisOptions, split_options
from data_plane.storage.sessions.redis_presence import RedisPresence

RedisClient: TypeAlias = "Redis | RedisCluster"
"""A single-node client or a cluster client; the stores use only what both offer."""


# KEYS[1] = account hash; ARGV = device, encoded location, ttl seconds (0 = keep).
# Returns the encoded previous location of the device, or nil.
_ADD_LUA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return old
"""

# KEYS[1] = account hash; ARGV = device, encoded location, ttl seconds, channel id.
# Sets the field only if it is absent or holds the same channel; returns 1 or 0.
_REFRESH_LUA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and cjson.decode(old)[1] ~= ARGV[4] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
"""

# KEYS[1] = account hash; ARGV = device, channel id, "1" to also match the gateway
# id in ARGV[4]. Deletes the field only if the stored location matches; returns 1 or 0.
_REMOVE_LUA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return 0
end
local loc = cjson.decode(old)
if loc[1] ~= ARGV[2] then
  return 0
end
if ARGV[3] == '1' and loc[2] ~= ARGV[4] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


# KEYS = account hashes. Returns each one's HGETALL reply (a flat field/value array).
# Read-only and atomic per key like HGETALL itself; used on a single server only.
_GET_MANY_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HGETALL', key)
end
return out
"""


@asynccontextmanager
async def _bounded(timeout: float) -> AsyncIterator[None]:
    """Run the body within ``timeout`` seconds; failures of the backend (and the
    deadline) raise ``SessionStoreUnavailable``."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except UNAVAILABLE as exc:
        raise unavailable(exc) from exc


class RedisSessionStore(RedisPresence):
    """A :class:`~data_plane.storage.sessions.protocol.SessionStore` on Redis or Redis Cluster.

    Presence (announced states and watches) comes from :class:`RedisPresence`.

    ``add_location`` and ``remove_location`` are single-key Lua scripts, so the
    read-and-replace and the compare-and-delete are atomic on the server.

    ``location_ttl_s``: when set, every ``add_location`` (re)sets the expiry of the
    account's whole hash to that many seconds, so locations of a crashed gateway that
    never removes them disappear eventually. All devices of an account expire together,
    ``location_ttl_s`` after the last add for any of them: a gateway that uses a TTL must
    re-add live locations (for example on client heartbeats) more often than that. Without
    it (the default) locations live until removed.

    ``options`` (:class:`~data_plane.storage.sessions.redis_options.RedisOptions`):
    ``batch_size`` bounds the accounts per round trip in lookups and the removals per
    round trip in ``remove_gateway``; ``timeout`` bounds every call, retries included.
    On a cluster every call touches only the masters owning its keys, so a failing
    master fails only calls for accounts in its slots.

    The store owns ``client``: :meth:`aclose` closes it. Responses may be decoded or not
    (``decode_responses`` either way).
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "cirno",
        location_ttl_s: int | None = None,
        batch_size: int | None = None,
        options: RedisOptions | None = None,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"the key prefix may not contain braces: {prefix!r}")
        if location_ttl_s is not None and location_ttl_s <= 0:
            raise ValueError("location_ttl_s must be a positive number of seconds")
        options = options or RedisOptions()
        if batch_size is not None:
            if batch_size <= 0:
                raise ValueError("batch_size must be positive")
            options = replace(options, batch_size=batch_size)
        self._client = client
        self._prefix = prefix
        self._ttl_s = location_ttl_s or 0
        self._batch_size = options.batch_size
        self._timeout = options.timeout
        self._add = client.register_script(_ADD_LUA)
        self._remove = client.register_script(_REMOVE_LUA)
        self._refresh = client.register_script(_REFRESH_LUA)
        cluster = client if isinstance(client, RedisCluster) else None
        # redis-py's async RedisCluster races when its first commands run concurrently
        # before it has loaded the slot map; initialise it once, under a lock.
        self._ready = cluster is None
        self._ready_lock = anyio.Lock()
        # One script call per batch on a single server, a pipeline per master on a cluster.
        self._get_many = client.register_script(_GET_MANY_LUA)
        fetch = self._fetch_scripted if cluster is None else self._fetch_pipelined
        self._lookups = MasterLookups(cluster, fetch, self._batch_size, self._timeout)
        # A single server's one batcher, awaited directly on the hot path (no layer of
        # routing between a push and its lookup).
        self._single = self._lookups.only_batcher()
        self._decode_all = LocationDecoder().decode_all
        self._keys: dict[tuple[str, str], str] = {}
        self._init_presence()

    async def _call(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run one operation within ``timeout``, its failures as ``SessionStoreUnavailable``."""
        await self._ensure_ready()
        async with _bounded(self._timeout):
            return await operation()

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                assert isinstance(self._client, RedisCluster)
                async with _bounded(self._timeout):
                    await self._client.initialize()
                self._ready = True

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "cirno",
        location_ttl_s: int | None = None,
        options: RedisOptions | None = None,
        **overrides: Any,
    ) -> RedisSessionStore:
        """A store on a new client for ``url``.

        ``redis://`` and ``rediss://`` (TLS) and ``unix://`` name one server;
        ``redis+cluster://host:port`` and ``rediss+cluster://host:port`` name any node of a
        Redis Cluster. ``options`` (defaults: :class:`RedisOptions`), then ``overrides``
        (its field names as keywords), then the URL's query parameters of the same names
        set the timeouts, retries and pool sizes. A command that cannot reach the server
        is retried ``retries`` times with a short jittered back-off while ``timeout``
        allows, then raises ``SessionStoreUnavailable``.

        A single server is used through a *blocking* pool of ``max_connections``: under
        load, commands wait up to ``socket_timeout`` for a free connection instead of
        failing with "Too many connections" (which dropped pushes under load).
        """
        url, chosen = split_options(url, replace(options or RedisOptions(), **overrides))
        scheme, sep, rest = url.partition("://")
        retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), chosen.retries)
        connection: dict[str, Any] = {
            "socket_timeout": chosen.socket_timeout,
            "socket_connect_timeout": chosen.socket_connect_timeout,
            "retry": retry,
        }
        client: RedisClient
        if sep and scheme in ("redis+cluster", "rediss+cluster"):
            client = RedisCluster.from_url(
                f"{scheme.split('+', 1)[0]}://{rest}",
                max_connections=chosen.max_connections,
                **connection,
            )
        elif sep and scheme in ("redis", "rediss", "unix"):
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=chosen.max_connections,
                timeout=chosen.socket_timeout,
                **connection,
            )
            client = Redis.from_pool(pool)  # the client owns (and closes) the pool
        else:
            raise UnsupportedSessionStoreURL(f"unsupported session store URL: {url!r}")
        return cls(client, prefix=prefix, location_ttl_s=location_ttl_s, options=chosen)

    def key(self, tenant: str, account: str) -> str:
        """The Redis key of the account's locations (for operators and tests)."""
        # Remembered: every push builds two keys, and escaping costs eight replaces.
        key = self._keys.get((tenant, account))
        if key is None:
            key = f"{self._prefix}:loc:{{{escape(tenant)}:{escape(account)}}}"
            if len(self._keys) >= DECODED_CACHE_SIZE:
                self._keys.clear()
            self._keys[tenant, account] = key
        return key

    async def add_location(self, location: Location) -> Location | None:
        """See :meth:`SessionStore.add_location`."""
        await self._ensure_ready()
        key = self.key(location.tenant, location.account)
        async with _bounded(self._timeout):
            old = await self._add(keys=[key], args=[location.device, encode(location), self._ttl_s])
        if old is None:
            return None
        previous = decode(location.tenant, location.account, location.device, old)
        return None if previous.channel_id == location.channel_id else previous

    async def refresh_location(self, location: Location) -> bool:
        """See :meth:`SessionStore.refresh_location`."""
        await self._ensure_ready()
        key = self.key(location.tenant, location.account)
        args: list[str | int] = [
            location.device,
            encode(location),
            self._ttl_s,
            location.channel_id,
        ]
        async with _bounded(self._timeout):
            stored = await self._refresh(keys=[key], args=args)
        return bool(stored)

    async def remove_location(
        self, tenant: str, account: str, device: str, channel_id: str
    ) -> bool:
        """See :meth:`SessionStore.remove_location`."""
        await self._ensure_ready()
        async with _bounded(self._timeout):
            removed = await self._remove(
                keys=[self.key(tenant, account)], args=[device, channel_id, "0", ""]
            )
        return bool(removed)

    async def get_locations(self, tenant: str, account: str) -> list[Location]:
        """See :meth:`SessionStore.get_locations`. Coalesced with concurrent lookups."""
        await self._ensure_ready()
        keys = [self.key(tenant, account)]
        single = self._single
        (raw,) = await (single.submit(keys) if single else self._lookups.lookup(keys))
        if isinstance(raw, SessionStoreUnavailable):
            raise raw
        return self._decode_all(tenant, account, raw)

    async def get_locations_many(
        self, tenant: str, accounts: Sequence[str]
    ) -> dict[str, list[Location]]:
        """See :meth:`SessionStore.get_locations_many`.

        Up to ``batch_size`` accounts (per master) share a round trip with concurrent
        lookups; more go in further round trips of up to ``batch_size`` each. Raises
        ``LocationsUnavailable`` when any account could not be read.
        """
        await self._ensure_ready()
        unique = list(dict.fromkeys(accounts))
        found: dict[str, list[Location]] = {}
        if not unique:
            return found
        keys = [self.key(tenant, a) for a in unique]
        single = self._single
        replies: Sequence[RawHash | SessionStoreUnavailable]
        if single is not None and len(keys) <= self._batch_size:
            replies = await single.submit(keys)  # raises when the round trip failed
        else:
            replies = await self._lookups.lookup(keys)
        failed: list[str] = []
        error: SessionStoreUnavailable | None = None
        for account, raw in zip(unique, replies, strict=True):
            if isinstance(raw, SessionStoreUnavailable):
                failed.append(account)
                error = error or raw
            elif raw:
                found[account] = self._decode_all(tenant, account, raw)
        if error is not None:
            message = f"{len(failed)} of {len(unique)} accounts not looked up: {error}"
            raise LocationsUnavailable(message, found, failed) from error.__cause__
        return found

    async def _fetch_scripted(self, keys: list[str]) -> list[RawHash]:
        """Every key's hash in one script call (a single server)."""
        flat: list[list[bytes | str]] = await self._get_many(keys=keys)
        return [dict(zip(reply[::2], reply[1::2], strict=True)) for reply in flat]

    async def _fetch_pipelined(self, keys: list[str]) -> list[RawHash]:
        """Every key's hash in one non-transactional pipeline (a cluster)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            replies: list[RawHash] = await pipe.execute()
        return replies

    async def get_session(self, tenant: str, account: str, channel_id: str) -> Location | None:
        """See :meth:`SessionStore.get_session`."""
        for location in await self.get_locations(tenant, account):
            if location.channel_id == channel_id:
                return location
        return None

    async def remove_gateway(self, gateway_id: str, locations: Iterable[Location]) -> int:
        """See :meth:`SessionStore.remove_gateway`.

        One pipeline per ``batch_size`` removals of one master, each within ``timeout``,
        the masters concurrently: a failing master does not keep the others' removals
        from being made. Raises ``SessionStoreUnavailable`` after the others
        were made when a master failed. The pipeline sends the script text (``EVAL``,
        cached by the server) rather than its digest, so no node of a cluster can answer
        ``NOSCRIPT`` mid-batch.
        """
        await self._ensure_ready()
        by_master: dict[str, list[Location]] = {}
        for loc in locations:
            key = self.key(loc.tenant, loc.account)
            by_master.setdefault(self._lookups.master_of(key), []).append(loc)
        if not by_master:
            return 0
        outcomes = await asyncio.gather(
            *(self._remove_on_master(gateway_id, locs) for locs in by_master.values()),
            return_exceptions=True,
        )
        removed = sum(outcome for outcome in outcomes if isinstance(outcome, int))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return removed

    async def _remove_on_master(self, gateway_id: str, pending: list[Location]) -> int:
        removed = 0
        for start in range(0, len(pending), self._batch_size):
            async with _bounded(self._timeout), self._client.pipeline(transaction=False) as pipe:
                for loc in pending[start : start + self._batch_size]:
                    key = self.key(loc.tenant, loc.account)
                    pipe.eval(_REMOVE_LUA, 1, key, loc.device, loc.channel_id, "1", gateway_id)
                replies: list[int] = await pipe.execute()
            removed += sum(replies)
        return removed

    async def ping(self) -> float:
        """See :meth:`SessionStore.ping`: one ``PING`` round trip, timed."""
        if self._lookups.closed:
            raise closed()
        await self._ensure_ready()
        started = time.perf_counter()
        async with _bounded(self._timeout):
            await self._client.ping()
        return time.perf_counter() - started

    async def aclose(self) -> None:
        """See :meth:`SessionStore.aclose`. Stops the lookup tasks, then closes the client."""
        await self._lookups.aclose()
        await self._client.aclose()
