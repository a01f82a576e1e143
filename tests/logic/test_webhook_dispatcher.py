"""The webhook dispatcher on a real SQLite message store, a real HTTP receiver and a
fake clock: back-off timing, in-order delivery, failure after the last attempt, and
the endpoint lease, each step driven by advancing the clock instead of sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from data_plane.cluster.outbound import Endpoint, OutboundConfig, OutboundDirectory
from data_plane.logic.outbound_settings import OutboundSettings
from data_plane.logic.webhooks.dispatcher import WebhookDispatcher
from data_plane.metrics import LOGIC_REGISTRY as REGISTRY
from data_plane.storage.messages import migrate
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from tests.http_receiver import HttpReceiver, Received
from tests.sqlite_lock import write_lock_held

pytestmark = pytest.mark.anyio

TENANT = "acme"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SETTINGS = OutboundSettings(backoff_base_s=1.0, backoff_max_s=10.0, max_attempts=3, lease_s=5.0)


class FakeClock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqlMessageStore]:
    url = f"sqlite:///{tmp_path}/messages.db"
    migrate.upgrade(url)
    async with open_sql_message_store(url, node_id=5) as store:
        yield store


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as http:
        yield http


def dispatcher(
    receiver: HttpReceiver, client: httpx.AsyncClient, clock: FakeClock, holder: str = "node-a"
) -> WebhookDispatcher:
    endpoint = Endpoint("wh_1", TENANT, receiver.url, frozenset(), SECRET)
    directory = OutboundDirectory.fixed(OutboundConfig({TENANT: (endpoint,)}, {}))
    return WebhookDispatcher(
        list,
        directory,
        SETTINGS,
        holder,
        client=client,
        clock=clock,
    )


async def queue_events(db: SqlMessageStore, clock: FakeClock, count: int) -> list[str]:
    """``count`` login events fanned out to the endpoint; their ``webhook-id``s."""
    now_ms = int(clock() * 1000)
    ids = [await db.outbound.append(TENANT, "login", {"n": n}, now_ms) for n in range(count)]
    await db.outbound.fan_out(lambda tenant, kind, addressed: ["wh_1"], now_ms)
    return [f"evt_{event_id}" for event_id in ids]


def answers(*statuses: int) -> Callable[[Received], int]:
    left = list(statuses)

    def answer(_: Received) -> int:
        return left.pop(0) if left else 200

    return answer


def attempts(result: str) -> float:
    """The node's ``cirno_webhook_deliveries_total{result}`` so far."""
    value = REGISTRY.get_sample_value("cirno_webhook_deliveries_total", {"result": result})
    return value or 0.0


def ids_received(receiver: HttpReceiver) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.requests()]


async def test_the_head_is_retried_with_back_off_and_nothing_overtakes_it(
    db: SqlMessageStore, receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    sender = dispatcher(receiver, client, clock)
    receiver.answer = answers(500, 503)
    a, b, c = await queue_events(db, clock, 3)
    before = {result: attempts(result) for result in ("sent", "retried", "failed")}

    await sender.serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a]  # failed: b and c wait behind it
    await sender.serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a]  # not due before its back-off (1 s)
    clock.now += 1.0
    await sender.serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a, a]  # the second failure waits 2 s
    clock.now += 1.9
    await sender.serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a, a]
    clock.now += 0.1
    await sender.serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a, a, a, b, c]
    assert await db.outbound.head(TENANT, "wh_1", 10) == []
    after = {result: attempts(result) for result in ("sent", "retried", "failed")}
    assert {k: after[k] - before[k] for k in after} == {"sent": 3, "retried": 2, "failed": 0}
    stamps = {r.headers["webhook-timestamp"] for r in receiver.requests()}
    assert str(int(clock.now)) in stamps  # each attempt is signed at its own time


async def test_a_delivery_fails_after_its_last_attempt_and_the_queue_moves_on(
    db: SqlMessageStore, receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    sender = dispatcher(receiver, client, clock)
    receiver.answer = answers(500, 500, 500)
    a, b = await queue_events(db, clock, 2)
    for step in (0.0, 1.0, 2.0):
        clock.now += step
        await sender.serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a, a, a, b]
    assert await db.outbound.head(TENANT, "wh_1", 10) == []


async def test_only_the_lease_holder_sends(
    db: SqlMessageStore, receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    (a,) = await queue_events(db, clock, 1)
    now_ms = int(clock() * 1000)
    assert await db.outbound.lease("webhook:acme:wh_1", "node-b", now_ms, 5000)
    await dispatcher(receiver, client, clock, "node-a").serve_endpoint(db.outbound, TENANT, "wh_1")
    assert receiver.requests() == []  # node-b holds the endpoint
    clock.now += 5.001  # node-b died: its lease runs out
    await dispatcher(receiver, client, clock, "node-a").serve_endpoint(db.outbound, TENANT, "wh_1")
    assert ids_received(receiver) == [a]


async def test_an_idle_look_takes_no_write_lock(
    db: SqlMessageStore, receiver: HttpReceiver, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Another writer (here: a plain connection; in a node: the message writer) holds
    # SQLite's write lock. A look with nothing to do only reads, so it neither waits
    # for that lock nor takes it between two batches of messages.
    clock = FakeClock()
    idle = dispatcher(receiver, client, clock)
    async with anyio.create_task_group() as tg:  # opens the pool's connection
        assert await idle.look(db.outbound, tg) is False
    with write_lock_held(tmp_path / "messages.db"):
        with anyio.fail_after(2):  # a write would wait out the 5 s busy timeout
            async with anyio.create_task_group() as tg:
                assert await idle.look(db.outbound, tg) is False
    (event,) = await queue_events(db, clock, 1)  # with work to do, it writes as before
    async with anyio.create_task_group() as tg:
        await dispatcher(receiver, client, clock).look(db.outbound, tg)
    assert ids_received(receiver) == [event]
