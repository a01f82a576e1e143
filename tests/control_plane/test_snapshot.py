"""The route snapshot cache: TTL on the app's clock, invalidation, bounded reloads."""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import Engine, text
from sqlmodel import Session

from control_plane.db import make_engine
from control_plane.models import HeartbeatIn
from control_plane.registry import record_heartbeat
from control_plane.route.cache import SnapshotCache
from control_plane.route.snapshot import Snapshot
from tests.control_plane.conftest import FakeClock


def add_tenant(url: str, tenant_id: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tenant (id, name, status, max_connections, messages_per_second,"
                    " isolation, created_at, updated_at) VALUES (:id, :id, 'active', 0, 0,"
                    " 'shared', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                ),
                {"id": tenant_id},
            )
            # What every directory write does in its transaction (commit_change).
            connection.execute(
                text("UPDATE revisions SET revision = revision + 1 WHERE scope = 'directory'")
            )
    finally:
        engine.dispose()


def test_ttl_invalidation_and_bounded_reloads(sqlite_url: str) -> None:
    clock = FakeClock(1_000_000.0)
    engine = make_engine(sqlite_url)
    cache = SnapshotCache(engine, clock, ttl=1.0)

    async def scenario() -> None:
        first = await cache.get()
        assert first.tenants == {}
        add_tenant(sqlite_url, "acme")  # as another process would
        assert await cache.get() is first  # within the TTL
        assert await cache.reload() is first  # younger than the reload bound
        clock.advance(0.2)
        reloaded = await cache.reload()
        assert set(reloaded.tenants) == {"acme"}
        add_tenant(sqlite_url, "beta")
        cache.invalidate()  # a write through this process
        assert set((await cache.get()).tenants) == {"acme", "beta"}
        add_tenant(sqlite_url, "gamma")
        clock.advance(1.5)  # past the TTL
        assert set((await cache.get()).tenants) == {"acme", "beta", "gamma"}

    try:
        anyio.run(scenario)
    finally:
        engine.dispose()


def beat(engine: Engine, node_id: str, now: float, **fields: Any) -> None:
    body: dict[str, Any] = {
        "id": node_id,
        "role": "gateway",
        "zone": "z",
        "region": "eu",
        "version": "1",
        "ws_url": f"ws://{node_id}",
        "connections": 0,
        "capacity": 10,
        **fields,
    }
    with Session(engine) as session:
        record_heartbeat(
            session,
            HeartbeatIn.model_validate(body),
            now,
            node_ttl=15,
            lease_ttl=30,
            id_node_count=1024,
        )


def test_incremental_refresh_sees_other_processes(sqlite_url: str) -> None:
    clock = FakeClock(1_000_000.0)
    engine = make_engine(sqlite_url)
    cache = SnapshotCache(engine, clock, ttl=1.0)

    def loads(snapshot: Snapshot) -> dict[str, int]:
        return {g.id: g.connections for g in snapshot.gateways}

    async def scenario() -> None:
        beat(engine, "a", clock.now)
        beat(engine, "b", clock.now)
        first = await cache.get()
        assert loads(first) == {"a": 0, "b": 0}

        clock.advance(1.5)
        unchanged = await cache.get()  # nothing happened: the same content, kept
        assert unchanged.gateways is first.gateways
        assert unchanged.loaded_at == clock.now

        beat(engine, "a", clock.now, connections=7)  # written by "another process"
        beat(engine, "c", clock.now, draining=True)
        clock.advance(1.5)
        assert loads(await cache.get()) == {"a": 7, "b": 0}  # c drains: not routable
        beat(engine, "c", clock.now, draining=False)
        clock.advance(1.5)
        assert loads(await cache.get()) == {"a": 7, "b": 0, "c": 0}

        clock.advance(11)  # b (and only b) is past its TTL
        beat(engine, "a", clock.now)
        beat(engine, "c", clock.now)
        clock.advance(1)
        assert loads(await cache.get()) == {"a": 0, "c": 0}

        add_tenant(sqlite_url, "acme")  # the directory revision moves
        clock.advance(1.5)
        assert set((await cache.get()).tenants) == {"acme"}

    try:
        anyio.run(scenario)
    finally:
        engine.dispose()
