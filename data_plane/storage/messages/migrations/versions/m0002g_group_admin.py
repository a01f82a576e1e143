"""Message tables, group administration: join policy, announcement and whole-group mute
on ``chat_groups``; role and mute on ``group_members``; ``group_applications``.

Hand-written to match ``data_plane.storage.messages.schema``. Existing groups become
invite-only (``join_policy`` 0), their members plain and unmuted. The embedded
database's revision ``0008`` (``migrations/versions/0008_group_admin.py``) runs this
revision's ``upgrade`` and ``downgrade``.

Revision ID: m0002g
Revises: m0001
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "m0002g"
down_revision: str | None = "m0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _flag(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.SmallInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    """Add the group-administration columns and the applications table."""
    with op.batch_alter_table("chat_groups") as batch:
        batch.add_column(
            sa.Column(
                "announcement", sa.String(length=1024), nullable=False, server_default=sa.text("''")
            )
        )
        batch.add_column(_flag("join_policy"))
        batch.add_column(_flag("muted"))
    with op.batch_alter_table("group_members") as batch:
        batch.add_column(_flag("role"))
        batch.add_column(_flag("muted"))
    op.create_table(
        "group_applications",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=256), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "group_id", "account", name="pk_group_applications"),
        **_MYSQL,
    )


def downgrade() -> None:
    """Drop the applications table and the group-administration columns."""
    op.drop_table("group_applications")
    with op.batch_alter_table("group_members") as batch:
        batch.drop_column("muted")
        batch.drop_column("role")
    with op.batch_alter_table("chat_groups") as batch:
        batch.drop_column("muted")
        batch.drop_column("join_policy")
        batch.drop_column("announcement")
