"""A dedicated tenant database gets the message tables and nothing else (SQLite, MySQL).

``data_plane.storage.messages.migrate`` runs the message store's own history: the
database ends with exactly the tables of ``messages.schema`` (plus that history's
version table), matching the schema as alembic autogenerate sees it, and no control
plane table. A database migrated earlier by the embedded history is adopted, not
migrated twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from control_plane.migrate import downgrade as embedded_downgrade
from control_plane.migrate import upgrade as embedded_upgrade
from data_plane.storage.messages import migrate
from data_plane.storage.messages.schema import metadata
from data_plane.storage.urls import sync_url
from tests.services import MYSQL_ENV, fresh_mysql_database, service_url

MESSAGE_TABLES = set(metadata.tables)
HEAD = "m0004"
"""The newest revision of the message tables' history."""


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own for each test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tenant/messages.db"
        return
    with fresh_mysql_database(service_url(MYSQL_ENV)) as url:
        yield url


def tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def position(url: str) -> list[str]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def only_message_tables(name: str | None, type_: str, _parents: Any) -> bool:
    return type_ != "table" or name in MESSAGE_TABLES


def schema_differences(url: str) -> list[Any]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    # Only the message tables: what else a database holds is
                    # checked by the table sets.
                    "include_name": only_message_tables,
                },
            )
            differences: list[Any] = compare_metadata(context, metadata)
            return differences
    finally:
        engine.dispose()


def test_a_dedicated_database_gets_exactly_the_message_tables(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    assert tables(empty_url) == MESSAGE_TABLES | {migrate.VERSION_TABLE}
    assert "alembic_version" not in tables(empty_url)  # no control-plane history either
    assert schema_differences(empty_url) == []
    assert position(empty_url) == [HEAD]
    migrate.upgrade(empty_url)  # already at head: nothing to do
    assert position(empty_url) == [HEAD]
    migrate.downgrade(empty_url)
    assert tables(empty_url) == {migrate.VERSION_TABLE}
    assert position(empty_url) == []
    migrate.upgrade(empty_url)
    assert tables(empty_url) == MESSAGE_TABLES | {migrate.VERSION_TABLE}


def test_a_database_of_the_embedded_history_is_adopted(empty_url: str) -> None:
    # How dedicated databases were migrated before: the whole embedded history.
    embedded_upgrade(empty_url)
    before = tables(empty_url)
    assert before >= MESSAGE_TABLES
    migrate.upgrade(empty_url)  # would fail if it created the tables again
    assert tables(empty_url) == before | {migrate.VERSION_TABLE}
    assert position(empty_url) == [HEAD]
    assert schema_differences(empty_url) == []  # the control plane's tables are left alone
    embedded_downgrade(empty_url)


def test_a_database_of_the_embedded_history_before_group_admin_is_adopted(
    empty_url: str,
) -> None:
    # Stopped at the message tables' first version: adopted at m0001, then migrated on.
    embedded_upgrade(empty_url, "0005")
    migrate.upgrade(empty_url)
    assert position(empty_url) == [HEAD]
    assert schema_differences(empty_url) == []
    embedded_downgrade(empty_url)


def test_the_command_line_migrates_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli/messages.db"
    assert migrate.main(["upgrade", url]) == 0
    assert tables(url) == MESSAGE_TABLES | {migrate.VERSION_TABLE}
    assert migrate.main(["downgrade", url]) == 0
    assert tables(url) == {migrate.VERSION_TABLE}


def test_m0004_gives_existing_messages_their_conversation_key(empty_url: str) -> None:
    migrate.upgrade(empty_url, "m0001")
    engine = create_engine(sync_url(empty_url))
    columns = "message_id, tenant, sender, receiver, group_id, type, body, extra, send_time"
    rows = [
        (1, "t", "zed", "amy", "", 1, b"a", "", 1),  # 1:1, the accounts in order
        (2, "t", "amy", "zed", "", 1, b"b", "", 2),
        (3, "t", "amy", "", "g1", 1, b"c", "", 3),  # group
    ]
    try:
        with engine.begin() as conn:
            names = [f":v{n}" for n in range(9)]
            insert = text(f"INSERT INTO messages ({columns}) VALUES ({', '.join(names)})")
            for row in rows:
                conn.execute(insert, {f"v{n}": value for n, value in enumerate(row)})
        migrate.upgrade(empty_url)
        with engine.connect() as conn:
            keys = conn.execute(
                text("SELECT message_id, conv_a, conv_b FROM messages ORDER BY message_id")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(k) for k in keys] == [(1, "amy", "zed"), (2, "amy", "zed"), (3, "g1", "")]
