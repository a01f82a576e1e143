"""Control plane: revision counters for exact route-snapshot change detection.

One row per scope (``directory``, ``gateways``), incremented inside every transaction
that changes what ``/v1/route`` snapshots read (see ``control_plane.models.revisions``).
Hand-written to match the model.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of control_plane.models.revisions.RevisionScope: a migration never
# imports the models.
_SCOPES = ("directory", "gateways")


def upgrade() -> None:
    """Create ``revisions`` with every counter at 0."""
    table = op.create_table(
        "revisions",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
        mysql_charset="utf8mb4",
    )
    op.bulk_insert(table, [{"scope": scope, "revision": 0} for scope in _SCOPES])


def downgrade() -> None:
    """Drop ``revisions`` (the code of revision 0003 does not read it)."""
    op.drop_table("revisions")
