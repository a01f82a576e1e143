"""Account bans: one row per banned (tenant, account), until ``expires_at`` or lifted.

Hand-written to match ``control_plane.models.AccountBan``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create ``account_bans``."""
    op.create_table(
        "account_bans",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "account"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_account_bans_expires_at", "account_bans", ["expires_at"])


def downgrade() -> None:
    """Drop ``account_bans``."""
    op.drop_index("ix_account_bans_expires_at", table_name="account_bans")
    op.drop_table("account_bans")
