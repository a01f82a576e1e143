"""The PresenceStore contract (part of the SessionStore), run against memory, a real
Redis and a real 3-master Redis Cluster (the ``store`` fixture of the session
contract). Time is the caller's ``now_ms``: no test sleeps."""

from __future__ import annotations

import asyncio

import pytest

from data_plane.storage.sessions.presence import Watcher, WatchLimitExceeded
from data_plane.storage.sessions.protocol import SessionStore
from tests.storage.test_session_contract import anyio_backend, loc, store

__all__ = ["anyio_backend", "store"]

pytestmark = pytest.mark.anyio

T = "t1"
A = Watcher("gw-1_alice_1", "gw-1")
B = Watcher("gw-2_bob_7", "gw-2")
TTL = 180_000


async def test_first_device_online_last_device_offline(store: SessionStore) -> None:
    assert await store.settle_presence(T, "alice") is None  # never online: no change
    await store.add_location(loc("phone", "ch-1"))
    assert await store.settle_presence(T, "alice") is True
    assert await store.settle_presence(T, "alice") is None  # reported once
    await store.add_location(loc("laptop", "ch-2"))
    assert await store.settle_presence(T, "alice") is None  # a second device: nothing
    await store.remove_location(T, "alice", "laptop", "ch-2")
    assert await store.settle_presence(T, "alice") is None  # one device left
    await store.remove_location(T, "alice", "phone", "ch-1")
    assert await store.settle_presence(T, "alice") is False
    assert await store.settle_presence(T, "alice") is None


async def test_racing_settles_report_each_change_once(store: SessionStore) -> None:
    await store.add_location(loc("phone", "ch-1"))
    await store.add_location(loc("laptop", "ch-2"))
    outcomes = await asyncio.gather(*(store.settle_presence(T, "alice") for _ in range(20)))
    assert outcomes.count(True) == 1
    assert outcomes.count(None) == 19


async def test_presence_is_per_tenant(store: SessionStore) -> None:
    await store.add_location(loc(tenant="t2"))
    assert await store.settle_presence(T, "alice") is None
    assert await store.settle_presence("t2", "alice") is True


async def test_a_settle_with_watchers_reads_them_only_on_a_change(store: SessionStore) -> None:
    await store.watch(T, A, ["alice"], limit=10, now_ms=0, ttl_ms=TTL)
    await store.watch(T, B, ["alice"], limit=10, now_ms=0, ttl_ms=10)  # expires at 10
    settle = store.settle_presence_with_watchers
    assert await settle(T, "alice", now_ms=5) == (None, [])  # never online: no change
    await store.add_location(loc("phone", "ch-1"))
    assert await settle(T, "alice", now_ms=5) == (True, [A, B])
    assert await settle(T, "alice", now_ms=5) == (None, [])  # reported once
    await store.remove_location(T, "alice", "phone", "ch-1")
    assert await settle(T, "alice", now_ms=20) == (False, [A])  # B's watch expired
    assert await store.watchers(T, "alice", now_ms=0) == [A]  # and was deleted
    assert await settle("t2", "alice", now_ms=20) == (None, [])


async def test_watch_and_find_watchers(store: SessionStore) -> None:
    assert await store.watch(T, A, ["bob", "carol", "bob"], limit=10, now_ms=0, ttl_ms=TTL) == 2
    assert await store.watch(T, B, ["bob"], limit=10, now_ms=0, ttl_ms=TTL) == 1
    assert await store.watchers(T, "bob", now_ms=1) == [A, B]
    assert await store.watchers(T, "carol", now_ms=1) == [A]
    assert await store.watchers(T, "dave", now_ms=1) == []
    assert await store.watchers("t2", "bob", now_ms=1) == []  # tenants are isolated
    # Watching again is idempotent.
    assert await store.watch(T, A, ["bob"], limit=10, now_ms=5, ttl_ms=TTL) == 2


async def test_limit_refuses_the_whole_request(store: SessionStore) -> None:
    assert await store.watch(T, A, ["a1", "a2"], limit=3, now_ms=0, ttl_ms=TTL) == 2
    with pytest.raises(WatchLimitExceeded) as refused:
        await store.watch(T, A, ["a2", "a3", "a4"], limit=3, now_ms=0, ttl_ms=TTL)
    assert refused.value.current == 2
    assert await store.watchers(T, "a3", now_ms=1) == []  # nothing was added
    # Re-watching what it already follows does not count twice.
    assert await store.watch(T, A, ["a1", "a2", "a3"], limit=3, now_ms=0, ttl_ms=TTL) == 3


async def test_unwatch_and_unwatch_all(store: SessionStore) -> None:
    await store.watch(T, A, ["bob", "carol", "dave"], limit=10, now_ms=0, ttl_ms=TTL)
    assert await store.unwatch(T, A.channel_id, ["bob", "nobody"], now_ms=1) == 2
    assert await store.watchers(T, "bob", now_ms=1) == []
    assert await store.watchers(T, "carol", now_ms=1) == [A]
    assert await store.unwatch_all(T, A.channel_id) == 2
    assert await store.watchers(T, "carol", now_ms=1) == []
    assert await store.watchers(T, "dave", now_ms=1) == []
    assert await store.unwatch_all(T, A.channel_id) == 0


async def test_watches_expire_at_their_deadline_and_free_the_limit(store: SessionStore) -> None:
    await store.watch(T, A, ["bob"], limit=1, now_ms=0, ttl_ms=TTL)
    assert await store.watchers(T, "bob", now_ms=TTL - 1) == [A]
    assert await store.watchers(T, "bob", now_ms=TTL) == []
    # The expired watch no longer counts against the limit.
    assert await store.watch(T, A, ["carol"], limit=1, now_ms=TTL, ttl_ms=TTL) == 1


async def test_refresh_moves_every_deadline(store: SessionStore) -> None:
    assert await store.refresh_watches(T, A, now_ms=0, ttl_ms=TTL) == 0
    await store.watch(T, A, ["bob", "carol"], limit=10, now_ms=0, ttl_ms=TTL)
    assert await store.refresh_watches(T, A, now_ms=TTL - 1, ttl_ms=TTL) == 2
    assert await store.watchers(T, "bob", now_ms=TTL + 10) == [A]
    assert await store.watchers(T, "carol", now_ms=2 * TTL - 2) == [A]
    assert await store.watchers(T, "carol", now_ms=2 * TTL - 1) == []


async def test_refresh_repairs_the_followed_copy(store: SessionStore) -> None:
    """A watch whose copy under the account was lost is rewritten by a refresh."""
    await store.watch(T, A, ["bob"], limit=10, now_ms=0, ttl_ms=TTL)
    await store.watch(T, B, ["bob"], limit=10, now_ms=0, ttl_ms=TTL)
    # B's copy under bob expires unseen (B's deadline is earlier than A's refresh).
    assert await store.refresh_watches(T, A, now_ms=TTL - 1, ttl_ms=TTL) == 1
    assert await store.watchers(T, "bob", now_ms=TTL) == [A]
