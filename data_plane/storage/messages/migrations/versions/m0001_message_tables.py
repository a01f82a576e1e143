"""Message tables, version 1: messages, inbox, inbox_seq, read_index, chat_groups,
group_members.

Hand-written to match ``data_plane.storage.messages.schema`` exactly (types, lengths,
nullability, keys, indexes and MySQL table options). The embedded database's revision
``0002`` (``migrations/versions/0002_messages.py``) runs this revision's ``upgrade`` and
``downgrade``, so both histories create the same tables from one definition.

Revision ID: m0001
Revises: (base)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "m0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _id(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=64), nullable=False)


def upgrade() -> None:
    """Create the message store's tables."""
    op.create_table(
        "messages",
        sa.Column("message_id", sa.BigInteger(), nullable=False, autoincrement=False),
        _id("tenant"),
        _id("sender"),
        _id("receiver"),
        _id("group_id"),
        sa.Column("group_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column(
            "body",
            sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("extra", sa.String(length=4096), nullable=False),
        sa.Column("client_msg_id", sa.String(length=64), nullable=True),
        sa.Column("send_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_messages"),
        sa.UniqueConstraint("tenant", "sender", "client_msg_id", name="uq_messages_client_msg_id"),
        **_MYSQL,
    )
    op.create_table(
        "inbox",
        _id("tenant"),
        _id("account"),
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("direction", sa.SmallInteger(), nullable=False),
        _id("account_b"),
        _id("group_id"),
        sa.Column("send_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "account", "seq", name="pk_inbox"),
        sa.UniqueConstraint("tenant", "account", "message_id", name="uq_inbox_message_id"),
        **_MYSQL,
    )
    op.create_table(
        "inbox_seq",
        _id("tenant"),
        _id("account"),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "account", name="pk_inbox_seq"),
        **_MYSQL,
    )
    op.create_table(
        "read_index",
        _id("tenant"),
        _id("account"),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "account", "device", name="pk_read_index"),
        **_MYSQL,
    )
    op.create_table(
        "chat_groups",
        _id("tenant"),
        _id("group_id"),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("avatar", sa.String(length=512), nullable=False),
        sa.Column("introduction", sa.String(length=1024), nullable=False),
        _id("owner"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "group_id", name="pk_chat_groups"),
        **_MYSQL,
    )
    op.create_table(
        "group_members",
        _id("tenant"),
        _id("group_id"),
        _id("account"),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("avatar", sa.String(length=512), nullable=False),
        sa.Column("join_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "group_id", "account", name="pk_group_members"),
        **_MYSQL,
    )
    op.create_index(
        "ix_group_members_account", "group_members", ["tenant", "account"], unique=False
    )


def downgrade() -> None:
    """Drop the message store's tables."""
    op.drop_index("ix_group_members_account", table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("chat_groups")
    op.drop_table("read_index")
    op.drop_table("inbox_seq")
    op.drop_table("inbox")
    op.drop_table("messages")
