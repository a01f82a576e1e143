"""Migration 0003 moves each tenant's secret into ``tenant_keys`` and back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from control_plane.migrate import downgrade, upgrade
from data_plane.storage.urls import sync_url


@pytest.fixture
def at_0002(database_url: str) -> Iterator[str]:
    upgrade(database_url, "0002")
    yield database_url
    downgrade(database_url)


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def execute(url: str, statement: str) -> None:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def test_secrets_move_to_tenant_keys_and_back(at_0002: str) -> None:
    url = at_0002
    execute(
        url,
        "INSERT INTO tenant (id, name, secret, secret_kid, status, created_at, updated_at) "
        "VALUES ('acme', 'Acme', 'acme-secret-0123456789', 'k1', 'active', "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:00'), "
        "('beta', 'Beta', 'beta-secret-0123456789', 'legacy', 'disabled', "
        "'2026-01-02 00:00:00', '2026-01-02 00:00:00')",
    )
    upgrade(url)
    assert rows(url, "SELECT tenant_id, kid, secret, expires_at FROM tenant_keys ORDER BY 1") == [
        ("acme", "k1", "acme-secret-0123456789", None),
        ("beta", "legacy", "beta-secret-0123456789", None),
    ]
    assert rows(
        url,
        "SELECT id, status, max_connections, messages_per_second, isolation, database_url, "
        "api_key_hash FROM tenant ORDER BY id",
    ) == [
        ("acme", "active", 0, 0.0, "shared", None, None),
        ("beta", "disabled", 0, 0.0, "shared", None, None),
    ]
    # A rotation after the upgrade; downgrading keeps the newest key.
    execute(
        url,
        "INSERT INTO tenant_keys (tenant_id, kid, secret, created_at) "
        "VALUES ('acme', 'k2', 'acme-rotated-0123456789', '2026-02-01 00:00:00')",
    )
    downgrade(url, "0002")
    assert rows(url, "SELECT id, secret, secret_kid FROM tenant ORDER BY id") == [
        ("acme", "acme-rotated-0123456789", "k2"),
        ("beta", "beta-secret-0123456789", "legacy"),
    ]
