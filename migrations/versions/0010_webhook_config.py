"""Webhook endpoints and push providers: the control plane's outbound configuration
(``control_plane.models.webhooks``). Logic nodes receive it through
``GET /internal/v1/outbound``; what happens to events lives in the message tables
(revision ``0009``).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``webhook_endpoint`` and ``push_provider``."""
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
    """Drop ``webhook_endpoint`` and ``push_provider``."""
    op.drop_table("push_provider")
    op.drop_index("ix_webhook_endpoint_tenant_id", table_name="webhook_endpoint")
    op.drop_table("webhook_endpoint")
