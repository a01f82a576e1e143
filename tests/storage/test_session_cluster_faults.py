"""One failing Redis Cluster master fails only the lookups of the accounts in its slots.

A private 3-master cluster (``cluster-require-full-coverage no``, as
``docs/operations.md`` asks for, so the other masters keep serving their slots once the
failing one is marked FAIL). One master is frozen with SIGSTOP, or killed and started
again on its port; meanwhile lookups of the other masters' accounts must answer at
once, lookups of its accounts must fail within the store's stated ``timeout`` (not
hang), and once it is back every lookup must succeed again promptly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.protocol import Location, LocationsUnavailable
from data_plane.storage.sessions.redis import RedisSessionStore
from data_plane.storage.sessions.redis_options import RedisOptions
from tests.redis_cluster import ClusterNodes, redis_cluster_nodes

pytestmark = pytest.mark.anyio

T = TypeVar("T")

BOUND = RedisOptions().timeout  # the stated default: every call answers within this
SLACK = 1.0  # event-loop scheduling on a busy 2-core machine
HEALTHY_WITHIN = 1.0  # what a lookup of a healthy master's accounts may take meanwhile
RECOVERY_DEADLINE = 30.0  # the cluster itself needs a few seconds to clear FAIL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    extra = [
        "--cluster-require-full-coverage", "no",
        "--appendonly", "yes", "--appendfsync", "always",  # a killed master keeps its data
    ]  # fmt: skip
    with redis_cluster_nodes(Path(tmp_path_factory.mktemp("cluster-faults")), 3, extra) as nodes:
        yield nodes


@pytest.fixture
async def store(cluster: ClusterNodes, key_prefix: str) -> AsyncIterator[RedisSessionStore]:
    """A store with the default options, holding 60 accounts spread over the masters."""
    store = RedisSessionStore.from_url(cluster.url, prefix=key_prefix)
    try:
        for i in range(60):
            await store.add_location(_loc(f"u{i}"))
        yield store
    finally:
        await store.aclose()


def _loc(account: str) -> Location:
    return Location("t", account, "phone", f"ch-{account}", "gw-1", 1)


def _by_master(store: RedisSessionStore, cluster: ClusterNodes) -> dict[int, list[str]]:
    accounts: dict[int, list[str]] = {port: [] for port in cluster.ports}
    for i in range(60):
        master = store._lookups.master_of(store.key("t", f"u{i}"))
        accounts[int(master.rsplit(":", 1)[1])].append(f"u{i}")
    assert all(accounts.values()), accounts  # every master holds some accounts
    return accounts


async def _timed(call: Awaitable[T]) -> tuple[float, T | BaseException]:
    started = time.monotonic()
    try:
        result: T | BaseException = await call
    except Exception as exc:
        result = exc
    return time.monotonic() - started, result


async def _check_isolation(store: RedisSessionStore, down: list[str], up: list[str]) -> None:
    """While ``down``'s master fails: ``up`` answers at once, ``down`` fails in time,
    and a lookup of both gets ``up``'s locations and names ``down``'s accounts."""
    outcomes = await asyncio.gather(
        *(_timed(store.get_locations("t", a)) for a in down),
        *(_timed(store.get_locations("t", a)) for a in up),
        _timed(store.get_locations_many("t", [down[0], *up])),
        _timed(store.add_location(_loc(up[0]))),
        _timed(store.add_location(_loc(down[0]))),
    )
    failed, answered = outcomes[: len(down)], outcomes[len(down) : len(down) + len(up)]
    (mixed_took, mixed), (add_up_took, add_up), (add_down_took, add_down) = outcomes[-3:]
    for took, result in failed:
        assert isinstance(result, SessionStoreUnavailable), result
        assert took < BOUND + SLACK
    for (took, result), account in zip(answered, up, strict=True):
        assert result == [_loc(account)]
        assert took < HEALTHY_WITHIN
    assert isinstance(mixed, LocationsUnavailable), mixed
    assert mixed.found == {a: [_loc(a)] for a in up}
    assert mixed.unavailable == [down[0]]
    assert mixed_took < BOUND + SLACK
    assert add_up is None and add_up_took < HEALTHY_WITHIN
    assert isinstance(add_down, SessionStoreUnavailable) and add_down_took < BOUND + SLACK


async def _recovers(store: RedisSessionStore, accounts: list[str]) -> float:
    """Poll until every account's lookup answers with its location; the seconds it took."""
    started = time.monotonic()
    expected = {a: [_loc(a)] for a in accounts}
    while True:
        try:
            if await store.get_locations_many("t", accounts) == expected:
                return time.monotonic() - started
        except SessionStoreUnavailable:
            pass
        assert time.monotonic() - started < RECOVERY_DEADLINE, "lookups did not recover"
        await asyncio.sleep(0.05)  # a poll interval, not a wait for something to happen


async def test_a_frozen_master_fails_only_its_own_accounts(
    store: RedisSessionStore, cluster: ClusterNodes
) -> None:
    accounts = _by_master(store, cluster)
    frozen = cluster.ports[1]
    down = accounts[frozen]
    up = [a for port, mine in accounts.items() if port != frozen for a in mine]
    cluster.freeze(frozen)
    try:
        # Twice: the second round runs after the others marked the master FAIL
        # (cluster-node-timeout is 2 s, each round takes ``BOUND``).
        await _check_isolation(store, down, up)
        await _check_isolation(store, down, up)
        # A gateway's cleanup still removes what the other masters hold.
        took, removal = await _timed(store.remove_gateway("gw-1", [_loc(down[-1]), _loc(up[-1])]))
        assert isinstance(removal, SessionStoreUnavailable) and took < BOUND + SLACK
    finally:
        cluster.thaw(frozen)
    kept = down + up[:-1]
    await _recovers(store, kept)
    # Nothing lingers: lookups of every master answer at once again.
    took, result = await _timed(store.get_locations_many("t", down + up))
    assert result == {a: [_loc(a)] for a in kept}  # up[-1] was removed, down[-1] kept
    assert took < HEALTHY_WITHIN


async def test_a_killed_master_fails_only_its_own_accounts_until_restarted(
    store: RedisSessionStore, cluster: ClusterNodes
) -> None:
    accounts = _by_master(store, cluster)
    killed = cluster.ports[0]  # the one the store's URL names
    down = accounts[killed]
    up = [a for port, mine in accounts.items() if port != killed for a in mine]
    cluster.kill(killed)
    try:
        await _check_isolation(store, down, up)
    finally:
        cluster.start(killed)
    await _recovers(store, down + up)
    took, result = await _timed(store.get_locations_many("t", down + up))
    assert result == {a: [_loc(a)] for a in down + up}
    assert took < HEALTHY_WITHIN
