"""Gateways' connections per tenant, for cluster-wide connection quotas.

One row per (gateway, tenant) with connections, replaced by each heartbeat of the
gateway; rows count only while the gateway's ``nodes`` row is live. Hand-written to match
``control_plane.models.NodeTenantConnections``.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``node_tenant_connections``."""
    op.create_table(
        "node_tenant_connections",
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("connections", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "tenant_id"),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop ``node_tenant_connections``."""
    op.drop_table("node_tenant_connections")
