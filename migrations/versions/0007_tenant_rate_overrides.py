"""Per-tenant overrides of the gateways' default rate limits.

``commands_per_second`` (per connection), ``account_commands_per_second`` (per account
and gateway) and ``logins_per_second`` (per gateway): NULL means the gateways' default,
so every existing tenant is limited by default; 0 means unlimited. Hand-written to
match ``control_plane.models.Tenant``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("commands_per_second", "account_commands_per_second", "logins_per_second")


def upgrade() -> None:
    """Add the three nullable rate columns to ``tenant``."""
    with op.batch_alter_table("tenant") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("tenant") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
