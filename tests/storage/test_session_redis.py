"""What only the Redis session store promises: errors when down, the key layout, TTL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from cirno.harness.ports import free_port
from data_plane.storage.errors import (
    SessionStoreUnavailable,
    StorageError,
    UnsupportedSessionStoreURL,
)
from data_plane.storage.sessions.factory import session_store_from_url
from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.storage.sessions.protocol import Location
from data_plane.storage.sessions.redis import RedisSessionStore
from data_plane.storage.sessions.redis_codec import LocationDecoder

pytestmark = pytest.mark.anyio

ALICE = Location(
    tenant="t1",
    account="alice",
    device="phone",
    channel_id="ch-1",
    gateway_id="gw-1",
    login_at=1_700_000_000_000,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def raw(redis_url: str, key_prefix: str) -> AsyncIterator[Redis]:
    """A plain client on the test server; deletes the test's keys afterwards."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_unreachable_server_raises_session_store_unavailable() -> None:
    store = RedisSessionStore.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, retries=1
    )
    try:
        with anyio.fail_after(10):
            with pytest.raises(SessionStoreUnavailable) as add_error:
                await store.add_location(ALICE)
            assert isinstance(add_error.value.__cause__, RedisConnectionError)
            assert isinstance(add_error.value, StorageError)
            with pytest.raises(SessionStoreUnavailable):
                await store.get_locations("t1", "alice")
            with pytest.raises(SessionStoreUnavailable):
                await store.get_locations_many("t1", ["alice", "bob"])
            with pytest.raises(SessionStoreUnavailable):
                await store.remove_location("t1", "alice", "phone", "ch-1")
            with pytest.raises(SessionStoreUnavailable):
                await store.remove_gateway("gw-1", [ALICE])
            with pytest.raises(SessionStoreUnavailable):
                await store.ping()
    finally:
        await store.aclose()


async def test_one_hash_tagged_key_per_account(redis_url: str, key_prefix: str, raw: Redis) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix)
    try:
        await store.add_location(ALICE)
        key = f"{key_prefix}:loc:{{t1:alice}}"
        assert store.key("t1", "alice") == key
        assert await raw.hgetall(key) == {b"phone": b'["ch-1","gw-1",1700000000000]'}
        assert store.key("a:b", "{c}") == f"{key_prefix}:loc:{{a%3Ab:%7Bc%7D}}"
        assert await raw.ttl(key) == -1
    finally:
        await store.aclose()


async def test_ttl_is_refreshed_on_add(redis_url: str, key_prefix: str, raw: Redis) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix, location_ttl_s=60)
    try:
        await store.add_location(ALICE)
        key = store.key("t1", "alice")
        assert 0 < await raw.ttl(key) <= 60
        await raw.expire(key, 5)
        await store.add_location(
            Location("t1", "alice", "web", "ch-2", "gw-1", login_at=1_700_000_000_001)
        )
        assert await raw.ttl(key) > 5
    finally:
        await store.aclose()


async def test_decoded_responses_client_works_too(redis_url: str, key_prefix: str) -> None:
    store = RedisSessionStore(Redis.from_url(redis_url, decode_responses=True), prefix=key_prefix)
    try:
        assert await store.add_location(ALICE) is None
        assert await store.get_locations("t1", "alice") == [ALICE]
        assert await store.get_locations_many("t1", ["alice"]) == {"alice": [ALICE]}
        assert await store.remove_gateway("gw-1", [ALICE]) == 1
    finally:
        await store.aclose()


def test_constructor_rejects_bad_settings() -> None:
    client = Redis()
    with pytest.raises(ValueError, match="braces"):
        RedisSessionStore(client, prefix="cirno{x}")
    with pytest.raises(ValueError, match="location_ttl_s"):
        RedisSessionStore(client, location_ttl_s=0)
    with pytest.raises(ValueError, match="batch_size"):
        RedisSessionStore(client, batch_size=0)


async def test_factory_picks_the_backend() -> None:
    for url in (None, "memory://"):
        memory = session_store_from_url(url)
        assert isinstance(memory, MemorySessionStore)
        await memory.aclose()
    for url in ("redis://127.0.0.1:6379/0", "redis+cluster://127.0.0.1:7000"):
        redis_store = session_store_from_url(url, prefix="p")
        assert isinstance(redis_store, RedisSessionStore)
        assert redis_store.key("t", "a") == "p:loc:{t:a}"
        await redis_store.aclose()
    for url in ("mysql://x/y", "localhost:6379", "redis+sentinel://h:1"):
        with pytest.raises(UnsupportedSessionStoreURL):
            session_store_from_url(url)


async def test_closed_memory_store_is_unavailable() -> None:
    store = MemorySessionStore()
    await store.ping()
    await store.aclose()
    with pytest.raises(SessionStoreUnavailable):
        await store.ping()


async def test_more_concurrent_lookups_than_pooled_connections(
    redis_url: str, key_prefix: str
) -> None:
    """Commands wait for a free pooled connection instead of failing ("Too many
    connections" used to drop pushes under load)."""
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix, max_connections=4)
    try:
        await store.add_location(Location("t", "a", "phone", "ch", "gw", 1))
        found = await asyncio.gather(*(store.get_locations("t", "a") for _ in range(200)))
        assert all(len(locations) == 1 for locations in found)
    finally:
        await store.aclose()


async def test_concurrent_lookups_share_round_trips(redis_url: str, key_prefix: str) -> None:
    """A push per stored message used to cost a pipeline each; lookups queued while one
    round trip is in flight now go together in the next one."""
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix, batch_size=50)
    try:
        for i in range(200):
            await store.add_location(Location("t", f"u{i}", "phone", f"ch-{i}", "gw", 1))
        before = store._lookups.round_trips
        found = await asyncio.gather(
            *(store.get_locations_many("t", [f"u{i}", "ghost"]) for i in range(200))
        )
        assert [sorted(f) for f in found] == [[f"u{i}"] for i in range(200)]
        trips = store._lookups.round_trips - before
        # 200 lookups of 2 keys, at most 50 keys per pipeline: 8 pipelines at least,
        # and far fewer than one per lookup.
        assert 8 <= trips <= 20
        # A lookup larger than one pipeline still answers completely.
        big = await store.get_locations_many("t", [f"u{i}" for i in range(200)])
        assert len(big) == 200
    finally:
        await store.aclose()


async def test_aclose_fails_queued_lookups_and_later_ones(redis_url: str, key_prefix: str) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix)
    await store.add_location(ALICE)
    waiting = [asyncio.ensure_future(store.get_locations("t1", "alice")) for _ in range(5)]
    await asyncio.sleep(0)  # queued, the lookup task started
    await store.aclose()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    for result in results:  # answered before the close, or told the store is closed
        assert result == [ALICE] or isinstance(result, SessionStoreUnavailable)
    with pytest.raises(SessionStoreUnavailable):
        await store.get_locations("t1", "alice")


async def test_a_failed_round_trip_fails_every_caller_in_it() -> None:
    store = RedisSessionStore.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, retries=0
    )
    try:
        with anyio.fail_after(10):
            results = await asyncio.gather(
                *(store.get_locations_many("t1", [f"u{i}"]) for i in range(20)),
                return_exceptions=True,
            )
        errors = [r for r in results if isinstance(r, SessionStoreUnavailable)]
        assert len(errors) == 20
        assert all(isinstance(e.__cause__, RedisConnectionError) for e in errors)
        assert len({id(e) for e in errors}) == 20  # one error each, not one shared
    finally:
        await store.aclose()


def test_decoded_locations_are_cached_by_the_whole_record() -> None:
    decoder = LocationDecoder(size=2)
    phone = b'["ch-1","gw-1",5]'
    first = decoder.decode_all("t", "a", {b"phone": phone, b"web": b'["ch-2","gw-1",6]'})
    assert [location.device for location in first] == ["phone", "web"]
    again = decoder.decode_all("t", "a", {b"phone": phone})
    assert again[0] is first[0]  # a hit hands out the same frozen object
    moved = decoder.decode_all("t", "a", {b"phone": b'["ch-3","gw-2",7]'})
    assert (moved[0].channel_id, moved[0].gateway_id) == ("ch-3", "gw-2")  # never stale
    other = decoder.decode_all("t", "b", {b"phone": phone})
    assert other[0].account == "b"  # the key includes the account
    assert len(decoder._decoded) <= 2  # bounded: emptied when full


async def test_a_changed_location_is_seen_after_being_read(redis_url: str, key_prefix: str) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix)
    try:
        await store.add_location(ALICE)
        assert await store.get_locations("t1", "alice") == [ALICE]
        newer = Location("t1", "alice", "phone", "ch-2", "gw-2", 2, client_version="2.0")
        await store.add_location(newer)
        assert await store.get_locations_many("t1", ["alice"]) == {"alice": [newer]}
    finally:
        await store.aclose()


async def test_lookups_survive_a_server_that_forgot_the_script(
    redis_url: str, key_prefix: str
) -> None:
    """A restarted server has no cached scripts: the lookup script is loaded again."""
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix)
    try:
        await store.add_location(ALICE)
        store._get_many.sha = "0" * 40  # as if the server had never seen it (NOSCRIPT)
        assert await store.get_locations_many("t1", ["alice", "bob"]) == {"alice": [ALICE]}
        assert await store.get_locations("t1", "alice") == [ALICE]
    finally:
        await store.aclose()


async def test_big_lookups_go_in_chunks_on_either_kind_of_fetch(
    redis_url: str, key_prefix: str
) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=key_prefix, batch_size=7)
    try:
        for i in range(30):
            await store.add_location(Location("t", f"u{i}", "phone", f"ch-{i}", "gw", i))
        accounts = [f"u{i}" for i in range(40)]
        found = await store.get_locations_many("t", accounts)
        assert sorted(found) == sorted(f"u{i}" for i in range(30))
        assert all(found[f"u{i}"][0].login_at == i for i in range(30))
        pipelined = await store._fetch_pipelined([store.key("t", a) for a in accounts])
        scripted = await store._fetch_scripted([store.key("t", a) for a in accounts])
        assert pipelined == scripted
    finally:
        await store.aclose()
