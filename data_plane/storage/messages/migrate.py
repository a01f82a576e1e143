"""Migrations of the message tables alone: what a dedicated tenant database receives.

Design. The message store owns its tables' history: an alembic tree of its own in
``messages/migrations`` (revisions ``m0001``, …) whose position is kept in its own
version table, ``message_store_version``. A tenant with a dedicated database
(``logic.tenant_stores``) has that database migrated with ``upgrade`` here, so it gets
the message tables and nothing of the control plane (no tenant, region, grayscale or
node tables, no ``alembic_version``), and ``data_plane`` never imports ``control_plane``.

The embedded database (control plane and messages in one database) keeps its single
history in ``migrations/`` exactly as before: its revision ``0002`` runs this tree's
``m0001`` (one definition of the tables, two histories), so an existing deployment
upgrades with the same revision ids and the same statements. A later change to the
message tables is a revision here plus an embedded revision that runs it.

Adoption. A dedicated database migrated before this module existed went through the
embedded history: it holds the message tables (created by ``0002``, identical to
``m0001``) but no ``message_store_version``. ``upgrade`` then records the message
revision its embedded position implies (:data:`EMBEDDED_POSITIONS`: ``m0001`` for one
that stopped before ``0008``) as applied (an alembic ``stamp``) instead of creating the
tables again, and continues from there. The control-plane tables such a database also
received are left alone: they are unused there, and dropping tables is an operator's
decision.

The URL is a plain ``sqlite:///…`` or ``mysql://…`` one; a SQLite file's directory is
created when missing. CLI: ``python -m data_plane.storage.messages.migrate
[upgrade|downgrade] URL [--revision R]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, inspect, pool
from sqlalchemy.engine import make_url

from data_plane.storage.urls import backend_of, sync_url

VERSION_TABLE = "message_store_version"
"""Where a database records its position in the message tables' history."""
FIRST_REVISION = "m0001"
"""The revision that creates the tables (``0002`` of the embedded history runs it)."""
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
EMBEDDED_POSITIONS = {
    "0008": "m0002g",
    "0009": "m0003o",
    "0010": "m0003o",
    "0011": "m0004",
    "0012": "m0004",
}
"""Embedded revisions that ran a later message revision than ``m0001``, and that revision
(an embedded position not listed here holds the ``m0001`` tables)."""


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the message tables of ``database_url`` up to ``revision`` (and only them)."""
    with _connected(database_url) as connection:
        config = _config(connection)
        if _adoptable(connection):
            command.stamp(config, _embedded_position(connection))
        command.upgrade(config, revision)
        connection.commit()


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the message tables of ``database_url`` down to ``revision``."""
    with _connected(database_url) as connection:
        command.downgrade(_config(connection), revision)
        connection.commit()


def _adoptable(connection: Connection) -> bool:
    """Message tables made by the embedded history, with no position in this one."""
    names = set(inspect(connection).get_table_names())
    return "messages" in names and VERSION_TABLE not in names


def _embedded_position(connection: Connection) -> str:
    """The message revision an embedded-history database's tables are at."""
    if "alembic_version" not in inspect(connection).get_table_names():
        return FIRST_REVISION
    embedded = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return EMBEDDED_POSITIONS.get(str(embedded), FIRST_REVISION)


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _connected(database_url: str) -> Iterator[Connection]:
    """A sync connection to ``database_url`` (NullPool: nothing kept open afterwards)."""
    url = sync_url(database_url)
    if backend_of(url) == "sqlite":
        _ensure_sqlite_parent(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _ensure_sqlite_parent(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m data_plane.storage.messages.migrate`` command line."""
    parser = argparse.ArgumentParser(
        prog="python -m data_plane.storage.messages.migrate",
        description="Migrate the message tables of a dedicated tenant database.",
    )
    parser.add_argument("direction", choices=["upgrade", "downgrade"])
    parser.add_argument("url", help="database URL (sqlite:///… or mysql://…)")
    parser.add_argument("--revision", help="target revision (default: head / base)")
    args = parser.parse_args(argv)
    if args.direction == "upgrade":
        upgrade(args.url, args.revision or "head")
    else:
        downgrade(args.url, args.revision or "base")
    return 0


if __name__ == "__main__":
    sys.exit(main())
