"""The push dispatcher on a real SQLite store, a real HTTP provider and a fake clock:
the collapse window, retries of 5xx, a stale token unregistered on 404, and a job
dropped when its account is online by send time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from data_plane.cluster.outbound import OutboundConfig, OutboundDirectory, Provider
from data_plane.logic.notify.dispatcher import PushDispatcher
from data_plane.logic.outbound_settings import OutboundSettings
from data_plane.storage.messages import migrate
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.storage.sessions.protocol import Location
from tests.http_receiver import HttpReceiver, Received
from tests.sqlite_lock import write_lock_held

pytestmark = pytest.mark.anyio

TENANT = "acme"
COLLAPSE_MS = 1000
SETTINGS = OutboundSettings(backoff_base_s=1.0, max_attempts=3, lease_s=5.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqlMessageStore]:
    url = f"sqlite:///{tmp_path}/messages.db"
    migrate.upgrade(url)
    async with open_sql_message_store(url, node_id=6) as store:
        yield store


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as http:
        yield http


def answers(*statuses: int) -> Callable[[Received], int]:
    left = list(statuses)
    return lambda _: left.pop(0) if left else 200


async def setup(
    db: SqlMessageStore, provider: HttpReceiver, client: httpx.AsyncClient, clock: FakeClock
) -> tuple[PushDispatcher, MemorySessionStore]:
    config = OutboundConfig(
        {}, {TENANT: Provider(TENANT, "http", provider.url, "", "", COLLAPSE_MS)}
    )
    sessions = MemorySessionStore()
    sender = PushDispatcher(
        lambda: [db],
        OutboundDirectory.fixed(config),
        SETTINGS,
        "node-a",
        sessions,
        client=client,
        clock=clock,
    )
    await db.push_queue.register(TENANT, "bob", "phone", "tok", "android", 0)
    return sender, sessions


async def message(db: SqlMessageStore, clock: FakeClock, message_id: int) -> None:
    await db.push_queue.queue(
        TENANT,
        ["bob"],
        sender="alice",
        group_id="",
        message_id=message_id,
        preview=f"m{message_id}",
        now_ms=int(clock() * 1000),
        collapse_ms=COLLAPSE_MS,
    )


async def test_a_burst_is_sent_once_after_its_window_and_5xx_is_retried(
    db: SqlMessageStore, provider: HttpReceiver, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    sender, _ = await setup(db, provider, client, clock)
    provider.answer = answers(503)
    for n in (1, 2, 3):
        await message(db, clock, n)
    assert not await sender.look(db)  # the collapse window is still open
    clock.now += 1.0
    assert await sender.look(db)  # sent, answered 503: retried after 1 s
    assert await sender.look(db) is False
    clock.now += 1.0
    assert await sender.look(db)
    assert [r.status for r in provider.requests()] == [503, 200]
    assert provider.requests()[-1].json()["count"] == "3"
    assert await db.push_queue.due(int(clock() * 1000) + 10**9, 10) == []


async def test_a_stale_token_is_unregistered(
    db: SqlMessageStore, provider: HttpReceiver, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    sender, _ = await setup(db, provider, client, clock)
    provider.answer = answers(404)
    await message(db, clock, 1)
    clock.now += 1.0
    await sender.look(db)
    assert await db.push_queue.tokens(TENANT, "bob") == []
    await message(db, clock, 2)  # nothing queued for a forgotten token
    assert await db.push_queue.due(int(clock() * 1000) + 10**9, 10) == []


async def test_a_job_whose_account_came_online_is_dropped(
    db: SqlMessageStore, provider: HttpReceiver, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    sender, sessions = await setup(db, provider, client, clock)
    await message(db, clock, 1)
    await sessions.add_location(Location(TENANT, "bob", "phone", "gw_bob_1", "gw", 0, ""))
    clock.now += 1.0
    await sender.look(db)
    assert provider.requests() == []
    assert await db.push_queue.due(int(clock() * 1000) + 10**9, 10) == []


async def test_an_idle_look_takes_no_lease_and_no_write_lock(
    db: SqlMessageStore, provider: HttpReceiver, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # With no job due, a look only reads: it neither renews the lease (a write, every
    # look) nor waits for the write lock another writer holds.
    clock = FakeClock()
    sender, _ = await setup(db, provider, client, clock)
    with write_lock_held(tmp_path / "messages.db"):
        with anyio.fail_after(2):  # a write would wait out the 5 s busy timeout
            assert await sender.look(db) is False
    now_ms = int(clock() * 1000)
    assert await db.outbound.lease("push", "node-b", now_ms, 5000)  # nobody held it
    await message(db, clock, 1)
    clock.now += 1.0
    assert await sender.look(db) is False  # due, but node-b holds the lease
    clock.now += 5.0
    assert await sender.look(db)
    assert len(provider.requests()) == 1
