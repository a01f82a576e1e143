"""Alembic environment of cirno-im: one history for the control plane and message store.

The database URL comes from, in order: ``-x url=…`` on the alembic command line, the
``sqlalchemy.url`` option set programmatically (``control_plane.migrate``), then
``CIRNO_DATABASE_URL`` (else the default SQLite file in ``CIRNO_DATA_DIR``). Plain
``sqlite:`` / ``mysql:`` URLs are turned into their sync-driver form.

SQLite cannot ``ALTER`` most things, so its migrations run in batch mode (copy and move).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from control_plane.db import ensure_sqlite_parent
from control_plane.migrate import target_metadata as _target_metadata
from control_plane.settings import database_url_from_env
from data_plane.storage.urls import backend_of, sync_url

config = context.config

# Run from the alembic CLI, configure logging from alembic.ini; called from Python
# (control_plane.migrate), leave the host process's logging alone.
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = _target_metadata()


def database_url() -> str:
    """The sync-driver URL of the database to migrate."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        url = config.get_main_option("sqlalchemy.url")
    if not url:
        url = database_url_from_env()
    return sync_url(url)


def run_migrations_offline() -> None:
    """Write the SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=backend_of(url) == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a connection given in ``config.attributes`` or a fresh engine."""
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run_on(given)
        return
    url = database_url()
    ensure_sqlite_parent(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
