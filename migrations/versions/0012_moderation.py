"""A tenant's moderation hook (``tenant_moderation``) and its recall window
(``tenant.recall_window_s``; NULL: the logic nodes' default).

Hand-written to match ``control_plane.models.TenantModeration`` and ``Tenant``.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create ``tenant_moderation``; add ``tenant.recall_window_s``."""
    op.create_table(
        "tenant_moderation",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("deadline_ms", sa.Integer(), nullable=False),
        sa.Column("fail_open", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
        mysql_charset="utf8mb4",
    )
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("recall_window_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop ``tenant.recall_window_s`` and ``tenant_moderation``."""
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("recall_window_s")
    op.drop_table("tenant_moderation")
