"""Message tables, version 4: conversations, recall tombstones, delete-for-me.

Adds ``conversations`` (the conversation list, kept by the send writer),
``hidden_messages`` (``chat.delete``), ``messages.recalled_at`` (``chat.recall``) and
``messages.conv_a`` / ``conv_b`` (the message's conversation, filled for existing rows
here, written by every send after) with their index ``ix_messages_conversation``
(``chat.history``).
Hand-written to match ``data_plane.storage.messages.schema``; the embedded database's
revision ``0011`` runs this one.

Existing messages get their conversation key (one UPDATE of the table), but their
conversations are not in ``conversations``: a conversation appears in the list with
its next message.

Revision ID: m0004
Revises: m0003o
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "m0004"
down_revision: str | None = "m0003o"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _id(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=64), nullable=False)


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    """Add the conversation tables, the tombstone column and the history index."""
    op.create_table(
        "conversations",
        _id("tenant"),
        _id("account"),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        _id("peer"),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_message_id", sa.BigInteger(), nullable=False),
        _id("last_sender"),
        sa.Column("last_time", sa.BigInteger(), nullable=False),
        sa.Column("last_type", sa.Integer(), nullable=False),
        sa.Column("preview", sa.String(length=64), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        _counter("read_seq"),
        _counter("read_message_id"),
        _counter("read_received"),
        _counter("read_group_seq"),
        sa.PrimaryKeyConstraint("tenant", "account", "kind", "peer", name="pk_conversations"),
        **_MYSQL,
    )
    op.create_index("ix_conversations_recent", "conversations", ["tenant", "account", "last_seq"])
    op.create_table(
        "hidden_messages",
        _id("tenant"),
        _id("account"),
        sa.Column("message_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("tenant", "account", "message_id", name="pk_hidden_messages"),
        **_MYSQL,
    )
    # Plain ADD COLUMN (no batch copy on SQLite): both are additive.
    op.add_column("messages", _counter("recalled_at"))
    for name in ("conv_a", "conv_b"):
        op.add_column("messages", sa.Column(name, sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE messages SET "
        "conv_a = CASE WHEN group_id <> '' THEN group_id "
        "WHEN sender < receiver THEN sender ELSE receiver END, "
        "conv_b = CASE WHEN group_id <> '' THEN '' "
        "WHEN sender < receiver THEN receiver ELSE sender END"
    )
    op.create_index(
        "ix_messages_conversation", "messages", ["tenant", "conv_a", "conv_b", "message_id"]
    )


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_index("ix_messages_conversation", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("conv_b")
        batch.drop_column("conv_a")
        batch.drop_column("recalled_at")
    op.drop_table("hidden_messages")
    op.drop_index("ix_conversations_recent", table_name="conversations")
    op.drop_table("conversations")
