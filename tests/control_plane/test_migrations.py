"""Alembic migrations on SQLite and MySQL: up, down, up again, and models match them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, create_engine, inspect

from control_plane.migrate import PROJECT_ROOT, target_metadata
from control_plane.migrate import downgrade as migrate_down
from control_plane.migrate import main as migrate_main
from control_plane.migrate import upgrade as migrate_up
from data_plane.storage.urls import sync_url


@contextmanager
def connect(database_url: str) -> Iterator[Connection]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def tables(database_url: str) -> set[str]:
    with connect(database_url) as connection:
        return set(inspect(connection).get_table_names()) - {"alembic_version"}


def model_tables() -> set[str]:
    return {name for metadata in target_metadata() for name in metadata.tables}


def differences(connection: Connection, metadata: Sequence[MetaData]) -> list[Any]:
    # alembic accepts a sequence of MetaData here (its AutogenContext does, as
    # env.py's target_metadata); only the annotation of compare_metadata is narrower.
    diffs: list[Any] = compare_metadata(
        MigrationContext.configure(connection), cast(MetaData, metadata)
    )
    return diffs


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    migrate_up(database_url)
    try:
        assert tables(database_url) == model_tables()
        assert "tenant" in tables(database_url)
        migrate_down(database_url)
        assert tables(database_url) == set()
        migrate_up(database_url)
        assert tables(database_url) == model_tables()
        migrate_up(database_url)  # already at head: nothing to do
    finally:
        migrate_down(database_url)


def test_models_match_migrations(database_url: str) -> None:
    migrate_up(database_url)
    try:
        with connect(database_url) as connection:
            diffs = differences(connection, target_metadata())
    finally:
        migrate_down(database_url)
    assert diffs == []


def test_upgrade_creates_the_sqlite_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deeper/still/control.db"
    migrate_up(url)
    assert (tmp_path / "deeper" / "still" / "control.db").is_file()
    assert "tenant" in tables(url)


def test_cli_arguments(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli/control.db"
    assert migrate_main(["upgrade", url]) == 0
    assert "tenant" in tables(url)
    assert migrate_main(["downgrade", url, "--revision", "0001"]) == 0
    assert tables(url) == {"tenant"}
    assert migrate_main(["downgrade", url]) == 0
    assert tables(url) == set()


def test_cli_works_from_any_directory_on_the_default_database(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "CIRNO_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("CIRNO_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "control_plane.migrate"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=60,
    )
    assert "tenant" in tables(f"sqlite:///{tmp_path}/data/control.db")
