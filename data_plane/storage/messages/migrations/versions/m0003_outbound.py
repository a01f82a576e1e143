"""Message tables, version 3: the webhook outbox and deliveries, push tokens and jobs.

Hand-written to match the outbound tables of ``data_plane.storage.messages.schema``.
The embedded database's revision ``0009`` (``migrations/versions/0009_outbound.py``)
runs this revision's ``upgrade`` and ``downgrade``.

Revision ID: m0003o
Revises: m0002g
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "m0003o"
down_revision: str | None = "m0002g"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}
_BODY = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _str(name: str, length: int = 64) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), nullable=False)


def _big(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    """Create the outbound tables."""
    op.create_table(
        "event_outbox",
        sa.Column("id", _AUTO_ID, nullable=False, autoincrement=True),
        _str("tenant"),
        _str("event_type", 32),
        _str("endpoint_id"),
        sa.Column("payload", _BODY, nullable=False),
        _big("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_event_outbox"),
        **_MYSQL,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _AUTO_ID, nullable=False, autoincrement=True),
        _str("tenant"),
        _str("endpoint_id"),
        _big("event_id"),
        _str("event_type", 32),
        sa.Column("payload", _BODY, nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        _int("attempts"),
        _big("next_attempt_at"),
        _big("created_at"),
        _big("finished_at"),
        _int("last_status_code"),
        _str("last_error", 512),
        _int("latency_ms"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        **_MYSQL,
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint",
        "webhook_deliveries",
        ["tenant", "endpoint_id", "status", "id"],
        unique=False,
    )
    op.create_index(
        "ix_webhook_deliveries_status",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "outbound_leases",
        _str("name", 200),
        _str("holder", 128),
        _big("expires_at"),
        sa.PrimaryKeyConstraint("name", name="pk_outbound_leases"),
        **_MYSQL,
    )
    op.create_table(
        "push_tokens",
        _str("tenant"),
        _str("account"),
        _str("device", 32),
        _str("token", 512),
        _str("platform", 16),
        _big("updated_at"),
        sa.PrimaryKeyConstraint("tenant", "account", "device", name="pk_push_tokens"),
        **_MYSQL,
    )
    op.create_table(
        "push_jobs",
        _str("tenant"),
        _str("account"),
        _str("device", 32),
        _str("token", 512),
        _int("count"),
        _str("sender"),
        _str("group_id"),
        _big("message_id"),
        _str("preview", 4096),
        _big("due_at"),
        _int("attempts"),
        sa.PrimaryKeyConstraint("tenant", "account", "device", name="pk_push_jobs"),
        **_MYSQL,
    )
    op.create_index("ix_push_jobs_due", "push_jobs", ["due_at"], unique=False)


def downgrade() -> None:
    """Drop the outbound tables."""
    op.drop_index("ix_push_jobs_due", table_name="push_jobs")
    op.drop_table("push_jobs")
    op.drop_table("push_tokens")
    op.drop_table("outbound_leases")
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_endpoint", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("event_outbox")
