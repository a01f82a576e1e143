"""The route snapshot cache: TTL on the app's clock, invalidation, bounded reloads."""

from __future__ import annotations

import anyio
from sqlalchemy import text

from control_plane.db import make_engine
from control_plane.snapshot import SnapshotCache
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
