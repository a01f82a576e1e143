"""The Redis (and Redis Cluster) :class:`~data_plane.storage.sessions.presence.PresenceStore`.

Layout, beside the account hashes of ``redis.py`` (``escape``d parts, hash tags in
braces):

- ``{prefix}:on:{<tenant>:<account>}``: ``1`` while the account is announced online;
  absent when offline. It shares its hash tag with the account's locations
  (``{prefix}:loc:{…}``), so one script reads both and settles atomically, on a Redis
  Cluster too. It expires :data:`ANNOUNCED_TTL_S` after the last settle (a bound for
  accounts whose offline settle never ran: their gateway crashed and no logic node
  saw it).
- ``{prefix}:wch:{<tenant>:<channel>}``: the accounts a connection follows, field =
  account, value = deadline (ms). Scripts on this one key count and cap the watches.
- ``{prefix}:wby:{<tenant>:<account>}``: the connections following an account, field
  = channel, value = ``[gateway_id, deadline]`` as JSON.

Both watch hashes expire ``ttl_ms`` after their last write (``PEXPIRE``), so nothing
outlives the newest deadline in it by more than the clock difference between the
caller and Redis; deadlines themselves are compared with the caller's ``now_ms``.
The copy under each followed account is written by a non-transactional pipeline after
the follower's own script (different slots on a cluster), as the protocol allows.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from data_plane.storage.sessions.presence import Watcher, WatchLimitExceeded
from data_plane.storage.sessions.redis_codec import escape, text

ANNOUNCED_TTL_S = 7 * 24 * 3600
"""An announced-online mark lives this long after its account's last login or logout."""

# KEYS = the account's locations, its announced mark; ARGV = the mark's ttl (s).
# Returns 1 (came online), 0 (went offline) or -1 (no change).
_SETTLE_LUA = """
local online = redis.call('EXISTS', KEYS[1]) == 1
local announced = redis.call('EXISTS', KEYS[2]) == 1
if online == announced then
  if online then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
  return -1
end
if online then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""

# KEYS = as _SETTLE_LUA, then the account's followers; ARGV = as _SETTLE_LUA.
# Returns {change} as _SETTLE_LUA does, then, on a change, the followers' HGETALL.
_SETTLE_WATCHERS_LUA = (
    "local function settle()\n"
    + _SETTLE_LUA
    + """
end
local changed = settle()
if changed < 0 then return {changed} end
return {changed, redis.call('HGETALL', KEYS[3])}
"""
)

# Drops the expired fields of KEYS[1] (a follower's watches) given ARGV[1] = now;
# leaves `live` = how many remain. Shared prologue of the scripts below.
_PRUNE = """
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local live = 0
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    live = live + 1
  end
end
"""

# ARGV = now, deadline, limit, ttl ms, accounts... Returns {1, count} or {0, live}.
_WATCH_LUA = (
    _PRUNE
    + """
local new = 0
for i = 5, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then new = new + 1 end
end
if live + new > tonumber(ARGV[3]) then return {0, live} end
for i = 5, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, live + new}
"""
)

# ARGV = now, accounts... Returns the live watches left.
_UNWATCH_LUA = (
    _PRUNE
    + """
for i = 2, #ARGV do live = live - redis.call('HDEL', KEYS[1], ARGV[i]) end
return live
"""
)

# Returns the followed accounts and deletes the key.
_UNWATCH_ALL_LUA = """
local accounts = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return accounts
"""

# ARGV = now, deadline, ttl ms. Returns the live accounts, their deadline moved.
_REFRESH_LUA = (
    _PRUNE
    + """
local accounts = redis.call('HKEYS', KEYS[1])
for _, account in ipairs(accounts) do redis.call('HSET', KEYS[1], account, ARGV[2]) end
if #accounts > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return accounts
"""
)


class RedisPresence:
    """Presence for :class:`~data_plane.storage.sessions.redis.RedisSessionStore`,
    which supplies the client, prefix, timeout and the calls below."""

    _client: Any
    _prefix: str
    _timeout: float

    def key(self, tenant: str, account: str) -> str:
        raise NotImplementedError  # provided by RedisSessionStore

    async def _ensure_ready(self) -> None:
        raise NotImplementedError  # provided by RedisSessionStore

    async def _call(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        raise NotImplementedError  # provided by RedisSessionStore: bounded, errors mapped

    def _init_presence(self) -> None:
        self._settle = self._client.register_script(_SETTLE_LUA)
        self._settle_watchers = self._client.register_script(_SETTLE_WATCHERS_LUA)
        self._watch = self._client.register_script(_WATCH_LUA)
        self._unwatch = self._client.register_script(_UNWATCH_LUA)
        self._unwatch_all = self._client.register_script(_UNWATCH_ALL_LUA)
        self._refresh_watches = self._client.register_script(_REFRESH_LUA)

    def _tagged(self, kind: str, tenant: str, name: str) -> str:
        return f"{self._prefix}:{kind}:{{{escape(tenant)}:{escape(name)}}}"

    async def settle_presence(self, tenant: str, account: str) -> bool | None:
        """See :meth:`PresenceStore.settle_presence`: one script over the account's
        locations and its mark (one slot)."""
        keys = [self.key(tenant, account), self._tagged("on", tenant, account)]
        changed = await self._call(lambda: self._settle(keys=keys, args=[ANNOUNCED_TTL_S]))
        return None if int(changed) < 0 else bool(int(changed))

    async def watch(
        self,
        tenant: str,
        watcher: Watcher,
        accounts: Sequence[str],
        *,
        limit: int,
        now_ms: int,
        ttl_ms: int,
    ) -> int:
        """See :meth:`PresenceStore.watch`."""
        unique = list(dict.fromkeys(accounts))
        deadline = now_ms + ttl_ms
        key = self._tagged("wch", tenant, watcher.channel_id)
        args = [now_ms, deadline, limit, ttl_ms, *unique]
        added, count = await self._call(lambda: self._watch(keys=[key], args=args))
        if not int(added):
            raise WatchLimitExceeded(int(count), limit)
        await self._write_followers(tenant, watcher, unique, deadline, ttl_ms)
        return int(count)

    async def unwatch(
        self, tenant: str, channel_id: str, accounts: Sequence[str], *, now_ms: int
    ) -> int:
        """See :meth:`PresenceStore.unwatch`."""
        unique = list(dict.fromkeys(accounts))
        key = self._tagged("wch", tenant, channel_id)
        left = await self._call(lambda: self._unwatch(keys=[key], args=[now_ms, *unique]))
        await self._drop_followers(tenant, channel_id, unique)
        return int(left)

    async def unwatch_all(self, tenant: str, channel_id: str) -> int:
        """See :meth:`PresenceStore.unwatch_all`."""
        key = self._tagged("wch", tenant, channel_id)
        raw = await self._call(lambda: self._unwatch_all(keys=[key]))
        accounts = [text(a) for a in raw]
        await self._drop_followers(tenant, channel_id, accounts)
        return len(accounts)

    async def refresh_watches(
        self, tenant: str, watcher: Watcher, *, now_ms: int, ttl_ms: int
    ) -> int:
        """See :meth:`PresenceStore.refresh_watches`: one script, and a pipeline only
        for a connection that follows someone."""
        deadline = now_ms + ttl_ms
        key = self._tagged("wch", tenant, watcher.channel_id)
        args = [now_ms, deadline, ttl_ms]
        raw = await self._call(lambda: self._refresh_watches(keys=[key], args=args))
        accounts = [text(a) for a in raw]
        await self._write_followers(tenant, watcher, accounts, deadline, ttl_ms)
        return len(accounts)

    async def watchers(self, tenant: str, account: str, *, now_ms: int) -> list[Watcher]:
        """See :meth:`PresenceStore.watchers`."""
        key = self._tagged("wby", tenant, account)
        raw: dict[Any, Any] = await self._call(lambda: self._client.hgetall(key))
        return await self._live_watchers(key, raw, now_ms)

    async def settle_presence_with_watchers(
        self, tenant: str, account: str, *, now_ms: int
    ) -> tuple[bool | None, list[Watcher]]:
        """See :meth:`PresenceStore.settle_presence_with_watchers`: one script over the
        account's locations, mark and followers (one slot: they share the hash tag)."""
        followers = self._tagged("wby", tenant, account)
        keys = [self.key(tenant, account), self._tagged("on", tenant, account), followers]
        reply = await self._call(lambda: self._settle_watchers(keys=keys, args=[ANNOUNCED_TTL_S]))
        changed = int(reply[0])
        if changed < 0:
            return None, []
        flat = reply[1]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return bool(changed), await self._live_watchers(followers, raw, now_ms)

    async def _live_watchers(self, key: str, raw: dict[Any, Any], now_ms: int) -> list[Watcher]:
        """The live watchers of a followers hash read as ``raw``; expired ones deleted."""
        live: list[Watcher] = []
        expired: list[str] = []
        for field, value in raw.items():
            gateway_id, deadline = json.loads(value)
            if int(deadline) <= now_ms:
                expired.append(text(field))
            else:
                live.append(Watcher(text(field), gateway_id))
        if expired:
            await self._call(lambda: self._client.hdel(key, *expired))
        return sorted(live, key=lambda w: w.channel_id)

    async def _write_followers(
        self, tenant: str, watcher: Watcher, accounts: list[str], deadline: int, ttl_ms: int
    ) -> None:
        if not accounts:
            return
        value = json.dumps([watcher.gateway_id, deadline], separators=(",", ":"))

        async def write() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for account in accounts:
                    key = self._tagged("wby", tenant, account)
                    pipe.hset(key, watcher.channel_id, value)
                    pipe.pexpire(key, ttl_ms)
                await pipe.execute()

        await self._call(write)

    async def _drop_followers(self, tenant: str, channel_id: str, accounts: list[str]) -> None:
        if not accounts:
            return

        async def drop() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for account in accounts:
                    pipe.hdel(self._tagged("wby", tenant, account), channel_id)
                await pipe.execute()

        await self._call(drop)
