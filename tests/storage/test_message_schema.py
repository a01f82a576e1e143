"""Migrations 0002, 0008, 0009 and 0011 create exactly the tables of ``messages.schema`` (SQLite
and MySQL).

Runs the message revisions' own ``upgrade`` / ``downgrade`` on an empty database
(without the rest of the chain) and compares with alembic autogenerate, types and server defaults
included. The full chain is checked by the migrations test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, inspect

from data_plane.storage.messages.schema import metadata
from data_plane.storage.urls import sync_url

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
REVISIONS = ("0002_messages", "0008_group_admin", "0009_outbound", "0011_conversations")
"""The embedded revisions that change the message tables, oldest first."""


def _revision(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"revision_{name}", VERSIONS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _upgrade_compare_downgrade(url: str) -> list[Any]:
    revisions = [_revision(name) for name in REVISIONS]
    assert (revisions[0].revision, revisions[0].down_revision) == ("0002", "0001")
    engine = create_engine(sync_url(url))
    try:
        for revision in revisions:
            with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
                revision.upgrade()
        with engine.begin() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences: list[Any] = compare_metadata(context, metadata)
        for revision in reversed(revisions):
            with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
                revision.downgrade()
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    return differences


def test_migration_matches_the_schema_on_sqlite(tmp_path: Path) -> None:
    assert _upgrade_compare_downgrade(f"sqlite:///{tmp_path / 'schema.db'}") == []


@pytest.mark.mysql
def test_migration_matches_the_schema_on_mysql(mysql_url: str) -> None:
    assert _upgrade_compare_downgrade(mysql_url) == []
