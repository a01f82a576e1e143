"""Control plane: tenant keys (data migration), API key, quotas, isolation; node registry,
node-id leases, regions, grayscale rules.

The ``tenant.secret`` / ``tenant.secret_kid`` pair becomes the first row of
``tenant_keys`` for every existing tenant; downgrading puts each tenant's newest key back.
Hand-written to match ``control_plane.models`` (types, lengths, keys, indexes).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's types: a migration never imports the models.
_TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4"}


def _str(name: str, length: int, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _double(name: str, *, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=nullable)


def upgrade() -> None:
    """Move secrets to ``tenant_keys``; add the tenant's new columns and the new tables."""
    op.create_table(
        "tenant_keys",
        _str("tenant_id", 64),
        _str("kid", 32),
        _str("secret", 256),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "kid"),
        **_MYSQL,
    )
    op.execute(
        "INSERT INTO tenant_keys (tenant_id, kid, secret, created_at, expires_at) "
        "SELECT id, secret_kid, secret, created_at, NULL FROM tenant"
    )
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("secret")
        batch.drop_column("secret_kid")
        batch.add_column(_str("api_key_hash", 64, nullable=True))
        batch.add_column(
            sa.Column("max_connections", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("messages_per_second", sa.Double(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("isolation", sa.String(length=16), nullable=False, server_default="shared")
        )
        batch.add_column(_str("database_url", 512, nullable=True))

    op.create_table(
        "nodes",
        _str("id", 64),
        _str("role", 16),
        _str("zone", 64),
        _str("region", 64),
        _str("pool", 64),
        _str("version", 64),
        _str("ws_url", 512, nullable=True),
        _str("tcp_addr", 256, nullable=True),
        _str("link_addr", 256, nullable=True),
        sa.Column("connections", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        _double("first_seen"),
        _double("last_seen"),
        _double("expires_at"),
        sa.PrimaryKeyConstraint("id"),
        **_MYSQL,
    )
    op.create_index("ix_nodes_expires_at", "nodes", ["expires_at"], unique=False)
    op.create_table(
        "id_leases",
        sa.Column("number", sa.Integer(), nullable=False, autoincrement=False),
        _str("node_id", 64),
        _double("expires_at"),
        sa.PrimaryKeyConstraint("number"),
        sa.UniqueConstraint("node_id", name="uq_id_leases_node_id"),
        **_MYSQL,
    )

    op.create_table(
        "regions",
        _str("id", 64),
        _str("name", 128),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        **_MYSQL,
    )
    for table, key in (("region_countries", "country"), ("region_continents", "continent")):
        op.create_table(
            table,
            _str(key, 2),
            _str("region_id", 64),
            sa.ForeignKeyConstraint(["region_id"], ["regions.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint(key),
            **_MYSQL,
        )
        op.create_index(f"ix_{table}_region_id", table, ["region_id"], unique=False)
    op.create_table(
        "region_zones",
        _str("region_id", 64),
        _str("zone", 64),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["region_id"], ["regions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("region_id", "zone"),
        **_MYSQL,
    )

    op.create_table(
        "grayscale_rules",
        _str("id", 64),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _str("description", 256),
        _str("tenant", 64, nullable=True),
        _str("accounts", 8192),
        _double("percent", nullable=True),
        _str("min_version", 32, nullable=True),
        _str("max_version", 32, nullable=True),
        _str("platforms", 640),
        _str("regions", 2200),
        _str("gateway_pool", 64, nullable=True),
        _str("logic_zone", 64, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("priority", name="uq_grayscale_rules_priority"),
        **_MYSQL,
    )


def downgrade() -> None:
    """Drop the new tables; put each tenant's newest key back into ``tenant``."""
    op.drop_table("grayscale_rules")
    op.drop_table("region_zones")
    op.drop_table("region_continents")  # with its index (MySQL refuses to drop the index
    op.drop_table("region_countries")  # alone: its foreign key needs one)
    op.drop_table("regions")
    op.drop_table("id_leases")
    op.drop_index("ix_nodes_expires_at", table_name="nodes")
    op.drop_table("nodes")

    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("database_url")
        batch.drop_column("isolation")
        batch.drop_column("messages_per_second")
        batch.drop_column("max_connections")
        batch.drop_column("api_key_hash")
        batch.add_column(
            sa.Column("secret", sa.String(length=256), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("secret_kid", sa.String(length=32), nullable=False, server_default="k1")
        )
    newest = (
        "(SELECT k.{column} FROM tenant_keys k WHERE k.tenant_id = tenant.id "
        "ORDER BY k.created_at DESC, k.kid DESC LIMIT 1)"
    )
    op.execute(
        f"UPDATE tenant SET secret = {newest.format(column='secret')}, "
        f"secret_kid = {newest.format(column='kid')} "
        "WHERE EXISTS (SELECT 1 FROM tenant_keys k WHERE k.tenant_id = tenant.id)"
    )
    with op.batch_alter_table("tenant") as batch:
        batch.alter_column("secret", server_default=None, existing_type=sa.String(length=256))
        batch.alter_column("secret_kid", server_default=None, existing_type=sa.String(length=32))
    op.drop_table("tenant_keys")
