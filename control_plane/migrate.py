"""Schema migrations through alembic, driven from Python.

``upgrade(url)`` / ``downgrade(url)`` work from any working directory: the alembic
configuration and the ``migrations`` scripts are located relative to this package.
The URL is a plain ``sqlite:///…`` or ``mysql://…`` one (the sync driver is chosen
here). CLI: ``python -m control_plane.migrate [upgrade|downgrade] [URL] [--revision R]``;
without a URL it migrates the database of ``CIRNO_DATABASE_URL`` / ``CIRNO_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlmodel import SQLModel

from control_plane.db import ensure_sqlite_parent
from control_plane.settings import database_url_from_env
from data_plane.storage.urls import sync_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def target_metadata() -> list[MetaData]:
    """Every table the migrations create: the control plane's and the message store's."""
    import control_plane.models  # noqa: F401  (registers the tables on SQLModel.metadata)
    from data_plane.storage.messages import schema as message_schema

    return [SQLModel.metadata, message_schema.metadata]


def alembic_config(database_url: str) -> Config:
    """An alembic ``Config`` for ``database_url`` that works from any directory.

    ``env.py`` leaves the process's logging alone when configured this way.
    """
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolates "%": URL-encoded passwords must be escaped.
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database of ``database_url`` up to ``revision``."""
    ensure_sqlite_parent(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database of ``database_url`` down to ``revision``."""
    ensure_sqlite_parent(database_url)
    command.downgrade(alembic_config(database_url), revision)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m control_plane.migrate`` command line."""
    parser = argparse.ArgumentParser(
        prog="python -m control_plane.migrate", description="Migrate a cirno-im database."
    )
    parser.add_argument("direction", nargs="?", choices=["upgrade", "downgrade"], default="upgrade")
    parser.add_argument("url", nargs="?", help="database URL (default: from the environment)")
    parser.add_argument("--revision", help="target revision (default: head / base)")
    args = parser.parse_args(argv)
    url: str = args.url or database_url_from_env()
    if args.direction == "upgrade":
        upgrade(url, args.revision or "head")
    else:
        downgrade(url, args.revision or "base")
    return 0


if __name__ == "__main__":
    sys.exit(main())
