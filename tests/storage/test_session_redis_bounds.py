"""The Redis session store's stated bounds: options from the URL, and every lookup
settled within ``timeout`` of being made, whatever the server does."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from redis.asyncio import Redis

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.protocol import Location
from data_plane.storage.sessions.redis import RedisSessionStore
from data_plane.storage.sessions.redis_codec import RawHash
from data_plane.storage.sessions.redis_lookups import LookupBatcher
from data_plane.storage.sessions.redis_options import RedisOptions, split_options
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.anyio

SLACK = 0.5  # event-loop scheduling on a busy machine


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_options_come_from_the_url_query() -> None:
    url, options = split_options(
        "redis+cluster://h:7001?timeout=1.5&socket_timeout=0.25&retries=1&ssl_cert_reqs=none",
        RedisOptions(),
    )
    assert url == "redis+cluster://h:7001?ssl_cert_reqs=none"  # the rest is redis-py's
    assert options == RedisOptions(timeout=1.5, socket_timeout=0.25, retries=1)
    assert split_options("redis://h:1/0", RedisOptions(batch_size=9)) == (
        "redis://h:1/0",
        RedisOptions(batch_size=9),
    )
    with pytest.raises(ValueError, match="timeout"):
        split_options("redis://h?timeout=soon", RedisOptions())
    with pytest.raises(ValueError, match="positive"):
        RedisOptions(timeout=0)
    with pytest.raises(ValueError, match="retries"):
        RedisOptions(retries=-1)


async def test_the_store_uses_the_urls_options() -> None:
    store = RedisSessionStore.from_url(
        "redis://127.0.0.1:6379/0?timeout=0.7&socket_timeout=0.3&batch_size=9", timeout=5.0
    )
    try:
        assert (store._timeout, store._batch_size) == (0.7, 9)  # the URL wins
        client = store._client
        assert isinstance(client, Redis)
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.3
    finally:
        await store.aclose()


async def test_a_lookup_queued_behind_a_stalled_round_trip_waits_one_timeout() -> None:
    """The stalled round trip is abandoned at its oldest lookup's deadline; a lookup
    queued behind it fails by its own deadline, not after a whole round trip more."""
    entered = asyncio.Event()
    answering = asyncio.Event()
    abandoned: list[int] = []

    async def fetch(keys: list[str]) -> list[RawHash]:
        entered.set()
        try:
            await answering.wait()  # a server that stopped answering
        except asyncio.CancelledError:
            abandoned.append(len(keys))
            raise
        return [{b"k": key.encode()} for key in keys]

    timeout = 0.3
    batcher = LookupBatcher(fetch, batch_size=10, timeout=timeout)
    started = time.monotonic()
    first = batcher.submit(["a"])
    await entered.wait()
    second = batcher.submit(["b"])  # queued while the first round trip stalls
    for future in (first, second):
        with pytest.raises(SessionStoreUnavailable, match="deadline"):
            await future
    assert time.monotonic() - started < timeout + SLACK  # not 2 x timeout
    assert abandoned  # the stalled round trip was cancelled, not left running
    answering.set()  # the server answers again: the next lookup succeeds at once
    assert await batcher.lookup(["c"]) == [{b"k": b"c"}]
    await batcher.aclose()


async def test_a_frozen_single_server_fails_lookups_in_time_then_recovers(
    redis_server: PrivateRedis,
) -> None:
    timeout = 1.0
    store = RedisSessionStore.from_url(redis_server.url, timeout=timeout)
    process = redis_server.process
    assert process is not None
    alice = Location("t", "alice", "phone", "ch-1", "gw-1", 1)
    try:
        await store.add_location(alice)
        os.kill(process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(store.get_locations("t", "alice") for _ in range(50)),
                store.add_location(alice),
                return_exceptions=True,
            )
            assert all(isinstance(r, SessionStoreUnavailable) for r in results), results
            assert time.monotonic() - started < timeout + SLACK
        finally:
            os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while True:  # poll: the server answers again as soon as it runs
            try:
                assert await store.get_locations("t", "alice") == [alice]
                break
            except SessionStoreUnavailable:
                assert time.monotonic() < deadline, "lookups did not recover"
                await asyncio.sleep(0.05)
    finally:
        await store.aclose()
