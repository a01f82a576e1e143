"""Message store, outbound: webhook outbox and deliveries, push tokens and jobs; and the
control plane's webhook endpoints and push providers.

The message tables are storage's: this revision runs the message store's revision
``m0002o`` (one definition, two histories, as ``0002``). ``webhook_endpoint`` and
``push_provider`` are the control plane's (``control_plane.models.webhooks``).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data_plane.storage.messages.migrations.versions import m0002_outbound

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the outbound tables of both parts."""
    m0002_outbound.upgrade()
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.String(length=512), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        mysql_charset="utf8mb4",
    )
    op.create_index(
        "ix_webhook_endpoint_tenant_id", "webhook_endpoint", ["tenant_id"], unique=False
    )
    op.create_table(
        "push_provider",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("project_id", sa.String(length=128), nullable=False),
        sa.Column("auth_token", sa.String(length=4096), nullable=False),
        sa.Column("collapse_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop the outbound tables of both parts."""
    op.drop_table("push_provider")
    op.drop_index("ix_webhook_endpoint_tenant_id", table_name="webhook_endpoint")
    op.drop_table("webhook_endpoint")
    m0002_outbound.downgrade()
