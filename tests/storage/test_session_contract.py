"""The SessionStore contract, run against every implementation.

The ``redis`` variant runs against the real server named by ``CIRNO_TEST_REDIS_URL``,
each test under its own key prefix, and deletes that prefix's keys afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis, RedisCluster

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.storage.sessions.protocol import Location, SessionStore
from data_plane.storage.sessions.redis import RedisSessionStore

pytestmark = pytest.mark.anyio

StoreFactory = Callable[[], SessionStore]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _delete_cluster_prefix(url: str, prefix: str) -> None:
    client = RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for key in keys:  # one key per call: keys live in different slots
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    """A fresh, empty store of each implementation."""
    if request.param == "memory":
        memory = MemorySessionStore()
        yield memory
        await memory.aclose()
        return
    prefix: str = request.getfixturevalue("key_prefix")
    if request.param == "redis-cluster":
        cluster_url: str = request.getfixturevalue("redis_cluster_url")
        cluster_store = RedisSessionStore.from_url(cluster_url, prefix=prefix)
        try:
            yield cluster_store
        finally:
            await cluster_store.aclose()
            await _delete_cluster_prefix(cluster_url, prefix)
        return
    url: str = request.getfixturevalue("redis_url")
    redis_store = RedisSessionStore.from_url(url, prefix=prefix)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()
        await _delete_prefix(url, prefix)


def loc(
    device: str = "phone",
    channel: str = "ch-1",
    *,
    tenant: str = "t1",
    account: str = "alice",
    gateway: str = "gw-1",
    login_at: int = 1_700_000_000_000,
    client_version: str = "",
    zone: str = "",
) -> Location:
    return Location(
        tenant=tenant,
        account=account,
        device=device,
        channel_id=channel,
        gateway_id=gateway,
        login_at=login_at,
        client_version=client_version,
        zone=zone,
    )


async def test_first_add_returns_none_and_round_trips(store: SessionStore) -> None:
    location = loc(client_version="2.1.0", zone="eu-1")
    assert await store.add_location(location) is None
    assert await store.get_locations("t1", "alice") == [location]


async def test_optional_fields_round_trip_when_empty(store: SessionStore) -> None:
    location = loc(client_version="", zone="")
    await store.add_location(location)
    assert await store.get_locations("t1", "alice") == [location]


async def test_same_device_new_channel_returns_and_replaces_previous(
    store: SessionStore,
) -> None:
    first = loc(channel="ch-1", gateway="gw-1")
    second = loc(channel="ch-2", gateway="gw-2", login_at=1_700_000_000_500)
    await store.add_location(first)
    assert await store.add_location(second) == first
    assert await store.get_locations("t1", "alice") == [second]


async def test_same_channel_readd_returns_none_and_refreshes(store: SessionStore) -> None:
    await store.add_location(loc(login_at=1))
    refreshed = loc(login_at=2, client_version="2.0")
    assert await store.add_location(refreshed) is None
    assert await store.get_locations("t1", "alice") == [refreshed]


async def test_devices_listed_sorted_by_device(store: SessionStore) -> None:
    phone = loc("phone", "ch-1")
    desktop = loc("desktop", "ch-2", gateway="gw-2")
    web = loc("web", "ch-3")
    for location in (phone, web, desktop):
        assert await store.add_location(location) is None
    assert await store.get_locations("t1", "alice") == [desktop, phone, web]


async def test_unknown_account_has_no_locations(store: SessionStore) -> None:
    assert await store.get_locations("t1", "nobody") == []
    assert await store.get_session("t1", "nobody", "ch-1") is None


async def test_remove_only_if_channel_still_matches(store: SessionStore) -> None:
    await store.add_location(loc(channel="ch-1"))
    newer = loc(channel="ch-2")
    await store.add_location(newer)
    assert await store.remove_location("t1", "alice", "phone", "ch-1") is False
    assert await store.get_locations("t1", "alice") == [newer]
    assert await store.remove_location("t1", "alice", "phone", "ch-2") is True
    assert await store.get_locations("t1", "alice") == []
    assert await store.remove_location("t1", "alice", "phone", "ch-2") is False


async def test_remove_one_device_keeps_the_others(store: SessionStore) -> None:
    phone = loc("phone", "ch-1")
    await store.add_location(phone)
    await store.add_location(loc("web", "ch-2"))
    assert await store.remove_location("t1", "alice", "web", "ch-2") is True
    assert await store.get_locations("t1", "alice") == [phone]


async def test_get_locations_many(store: SessionStore) -> None:
    accounts = [f"user-{i:03d}" for i in range(500)]
    expected: dict[str, list[Location]] = {}
    for i, account in enumerate(accounts):
        if i % 3 == 0:
            continue  # absent
        devices = ["phone", "web"] if i % 5 == 0 else ["phone"]
        for device in reversed(devices):
            location = loc(device, f"ch-{account}-{device}", account=account)
            await store.add_location(location)
        expected[account] = [
            loc(device, f"ch-{account}-{device}", account=account) for device in devices
        ]
    found = await store.get_locations_many("t1", [*accounts, "user-001", "ghost"])
    assert found == expected
    assert await store.get_locations_many("t1", []) == {}
    assert await store.get_locations_many("t2", accounts) == {}


async def test_concurrent_lookups_each_get_their_own_answer(store: SessionStore) -> None:
    """Lookups running at once (a push per stored message) may share round trips, but
    every caller gets exactly its own accounts' locations, whatever the others asked."""
    for i in range(40):
        await store.add_location(loc("phone", f"ch-{i}", account=f"u{i}"))
        await store.add_location(loc("phone", f"other-{i}", tenant="t2", account=f"u{i}"))

    async def many(i: int) -> dict[str, list[Location]]:
        return await store.get_locations_many("t1", [f"u{i}", f"u{(i + 1) % 40}", "ghost"])

    answers = await asyncio.gather(
        *(many(i) for i in range(40)),
        *(store.get_locations("t2", f"u{i}") for i in range(40)),
        store.get_locations_many("t1", []),
    )
    for i in range(40):
        j = (i + 1) % 40
        assert answers[i] == {
            f"u{i}": [loc("phone", f"ch-{i}", account=f"u{i}")],
            f"u{j}": [loc("phone", f"ch-{j}", account=f"u{j}")],
        }
        assert answers[40 + i] == [loc("phone", f"other-{i}", tenant="t2", account=f"u{i}")]
    assert answers[80] == {}


async def test_a_cancelled_lookup_does_not_disturb_the_others(store: SessionStore) -> None:
    await store.add_location(loc())
    waiting = [asyncio.ensure_future(store.get_locations("t1", "alice")) for _ in range(10)]
    waiting[3].cancel()
    waiting[7].cancel()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    for i, result in enumerate(results):
        if i in (3, 7):
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result == [loc()]
    assert await store.get_locations_many("t1", ["alice"]) == {"alice": [loc()]}


async def test_tenants_are_isolated(store: SessionStore) -> None:
    one = loc(tenant="t1", channel="ch-1")
    two = loc(tenant="t2", channel="ch-2")
    assert await store.add_location(one) is None
    assert await store.add_location(two) is None
    assert await store.get_locations("t1", "alice") == [one]
    assert await store.get_locations("t2", "alice") == [two]
    assert await store.remove_location("t1", "alice", "phone", "ch-2") is False
    assert await store.get_session("t1", "alice", "ch-2") is None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a:b", "c"), ("a", "b:c")),
        (("t", "x}y"), ("t", "x%7Dy")),
        (("t{1}", "{alice}"), ("t", "{1}:{alice}")),
    ],
)
async def test_separators_and_braces_never_collide(
    store: SessionStore, first: tuple[str, str], second: tuple[str, str]
) -> None:
    one = loc(tenant=first[0], account=first[1], channel="ch-1")
    two = loc(tenant=second[0], account=second[1], channel="ch-2")
    await store.add_location(one)
    assert await store.add_location(two) is None
    assert await store.get_locations(*first) == [one]
    assert await store.get_locations(*second) == [two]


async def test_non_ascii_values_round_trip(store: SessionStore) -> None:
    location = loc("手机", "通道-1", account="チルノ", gateway="gw-⑨", zone="ß")
    await store.add_location(location)
    assert await store.get_locations("t1", "チルノ") == [location]
    assert await store.remove_location("t1", "チルノ", "手机", "通道-1") is True


async def test_get_session(store: SessionStore) -> None:
    phone = loc("phone", "ch-1")
    web = loc("web", "ch-2")
    await store.add_location(phone)
    await store.add_location(web)
    assert await store.get_session("t1", "alice", "ch-2") == web
    assert await store.get_session("t1", "alice", "ch-1") == phone
    assert await store.get_session("t1", "alice", "ch-9") is None
    assert await store.get_session("t1", "bob", "ch-1") is None


async def test_remove_gateway(store: SessionStore) -> None:
    on_gw1 = [loc("phone", "ch-1", account="alice"), loc("web", "ch-2", account="bob")]
    for location in on_gw1:
        await store.add_location(location)
    elsewhere = loc("phone", "ch-3", account="carol", gateway="gw-2")
    await store.add_location(elsewhere)
    # bob's web device logged in again on gw-2 before gw-1's cleanup ran.
    bob_again = loc("web", "ch-4", account="bob", gateway="gw-2")
    await store.add_location(bob_again)
    # carol is given with gw-1's name but is stored on gw-2: kept.
    carol_claimed = loc("phone", "ch-3", account="carol", gateway="gw-1")
    assert await store.remove_gateway("gw-1", [*on_gw1, carol_claimed]) == 1
    assert await store.get_locations("t1", "alice") == []
    assert await store.get_locations("t1", "bob") == [bob_again]
    assert await store.get_locations("t1", "carol") == [elsewhere]
    assert await store.remove_gateway("gw-1", []) == 0


async def test_racing_logins_on_one_device(store: SessionStore) -> None:
    channels = [f"ch-{i}" for i in range(20)]
    results = await asyncio.gather(
        *(store.add_location(loc("phone", channel)) for channel in channels)
    )
    final = await store.get_locations("t1", "alice")
    assert len(final) == 1
    replaced = [result.channel_id for result in results if result is not None]
    assert sum(result is None for result in results) == 1
    assert sorted([*replaced, final[0].channel_id]) == sorted(channels)


async def test_ping_times_an_answer_and_fails_once_closed(store: SessionStore) -> None:
    answered_in = await store.ping()
    assert isinstance(answered_in, float)
    assert 0.0 <= answered_in < 5.0
    await store.aclose()
    with pytest.raises(SessionStoreUnavailable):
        await store.ping()


async def test_refresh_restores_a_lost_location(store: SessionStore) -> None:
    assert await store.refresh_location(loc("phone", "ch-1"))
    assert await store.get_locations("t1", "alice") == [loc("phone", "ch-1")]
    assert await store.refresh_location(loc("phone", "ch-1"))  # idempotent
    assert await store.get_locations("t1", "alice") == [loc("phone", "ch-1")]


async def test_refresh_never_displaces_a_newer_login(store: SessionStore) -> None:
    await store.add_location(loc("phone", "ch-new"))
    assert not await store.refresh_location(loc("phone", "ch-old"))
    assert await store.get_locations("t1", "alice") == [loc("phone", "ch-new")]
    assert await store.refresh_location(loc("laptop", "ch-old"))  # another device is free
    assert [x.channel_id for x in await store.get_locations("t1", "alice")] == [
        "ch-old",
        "ch-new",
    ]
