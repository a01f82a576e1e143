"""The in-process :class:`~data_plane.storage.sessions.presence.PresenceStore`.

A mixin of :class:`~data_plane.storage.sessions.memory.MemorySessionStore`: it reads
the store's locations to settle presence. As there, every critical section runs
without an ``await`` in it.
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.sessions.presence import Watcher, WatchLimitExceeded
from data_plane.storage.sessions.protocol import Location

_Key = tuple[str, str]


class MemoryPresence:
    """Announced states and watches in dicts (see :class:`PresenceStore`)."""

    _accounts: dict[_Key, dict[str, Location]]

    def __init__(self) -> None:
        self._announced: set[_Key] = set()
        # (tenant, channel) → followed account → (watcher, deadline ms)
        self._following: dict[_Key, dict[str, tuple[Watcher, int]]] = {}
        # (tenant, account) → watcher channel → (watcher, deadline ms)
        self._followers: dict[_Key, dict[str, tuple[Watcher, int]]] = {}

    async def _enter(self) -> None:
        raise NotImplementedError  # provided by MemorySessionStore

    async def settle_presence(self, tenant: str, account: str) -> bool | None:
        """See :meth:`PresenceStore.settle_presence`."""
        await self._enter()
        key = (tenant, account)
        online = bool(self._accounts.get(key))
        if online == (key in self._announced):
            return None
        if online:
            self._announced.add(key)
        else:
            self._announced.discard(key)
        return online

    async def settle_presence_with_watchers(
        self, tenant: str, account: str, *, now_ms: int
    ) -> tuple[bool | None, list[Watcher]]:
        """See :meth:`PresenceStore.settle_presence_with_watchers`."""
        changed = await self.settle_presence(tenant, account)
        if changed is None:
            return None, []
        return changed, await self.watchers(tenant, account, now_ms=now_ms)

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
        await self._enter()
        following = self._live_following(tenant, watcher.channel_id, now_ms)
        new = [a for a in dict.fromkeys(accounts) if a not in following]
        if len(following) + len(new) > limit:
            raise WatchLimitExceeded(len(following), limit)
        deadline = now_ms + ttl_ms
        for account in dict.fromkeys(accounts):
            following[account] = (watcher, deadline)
            self._followers.setdefault((tenant, account), {})[watcher.channel_id] = (
                watcher,
                deadline,
            )
        self._keep(tenant, watcher.channel_id, following)
        return len(following)

    async def unwatch(
        self, tenant: str, channel_id: str, accounts: Sequence[str], *, now_ms: int
    ) -> int:
        """See :meth:`PresenceStore.unwatch`."""
        await self._enter()
        following = self._live_following(tenant, channel_id, now_ms)
        for account in accounts:
            following.pop(account, None)
            self._drop_follower(tenant, account, channel_id)
        self._keep(tenant, channel_id, following)
        return len(following)

    async def unwatch_all(self, tenant: str, channel_id: str) -> int:
        """See :meth:`PresenceStore.unwatch_all`."""
        await self._enter()
        following = self._following.pop((tenant, channel_id), {})
        for account in following:
            self._drop_follower(tenant, account, channel_id)
        return len(following)

    async def refresh_watches(
        self, tenant: str, watcher: Watcher, *, now_ms: int, ttl_ms: int
    ) -> int:
        """See :meth:`PresenceStore.refresh_watches`."""
        await self._enter()
        following = self._live_following(tenant, watcher.channel_id, now_ms)
        deadline = now_ms + ttl_ms
        for account in following:
            following[account] = (watcher, deadline)
            self._followers.setdefault((tenant, account), {})[watcher.channel_id] = (
                watcher,
                deadline,
            )
        self._keep(tenant, watcher.channel_id, following)
        return len(following)

    async def watchers(self, tenant: str, account: str, *, now_ms: int) -> list[Watcher]:
        """See :meth:`PresenceStore.watchers`."""
        await self._enter()
        followers = self._followers.get((tenant, account), {})
        for channel in [c for c, (_, deadline) in followers.items() if deadline <= now_ms]:
            del followers[channel]
        if not followers:
            self._followers.pop((tenant, account), None)
        return [followers[channel][0] for channel in sorted(followers)]

    def _live_following(
        self, tenant: str, channel_id: str, now_ms: int
    ) -> dict[str, tuple[Watcher, int]]:
        """The channel's watches with expired ones dropped (a copy to fill in)."""
        following = self._following.get((tenant, channel_id), {})
        for account in [a for a, (_, deadline) in following.items() if deadline <= now_ms]:
            del following[account]
            self._drop_follower(tenant, account, channel_id)
        return dict(following)

    def _keep(
        self, tenant: str, channel_id: str, following: dict[str, tuple[Watcher, int]]
    ) -> None:
        if following:
            self._following[tenant, channel_id] = following
        else:
            self._following.pop((tenant, channel_id), None)

    def _drop_follower(self, tenant: str, account: str, channel_id: str) -> None:
        followers = self._followers.get((tenant, account))
        if followers is None:
            return
        followers.pop(channel_id, None)
        if not followers:
            del self._followers[tenant, account]

    def _clear_presence(self) -> None:
        self._announced.clear()
        self._following.clear()
        self._followers.clear()
