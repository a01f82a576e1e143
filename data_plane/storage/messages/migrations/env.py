"""Alembic environment of the message tables alone (a dedicated tenant database).

Run by ``data_plane.storage.messages.migrate``, which passes the connection in
``config.attributes["connection"]``. The history's position is kept in its own version
table (``migrate.VERSION_TABLE``), never in ``alembic_version``, so this history and the
embedded database's one never read each other's position.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from data_plane.storage.messages.migrate import VERSION_TABLE
from data_plane.storage.messages.schema import metadata

config = context.config


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection: Connection | None = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run through data_plane.storage.messages.migrate, which passes a connection")
_run_on(connection)
