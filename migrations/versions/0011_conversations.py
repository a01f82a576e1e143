"""Message store: conversations, recall tombstones, delete-for-me, the history index.

Runs the message store's own revision ``m0004``
(``data_plane/storage/messages/migrations/versions/m0004_conversations.py``), which a
dedicated tenant database receives alone. One definition, two histories.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.messages.migrations.versions import m0004_conversations

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the conversation tables, the tombstone column and the history index."""
    m0004_conversations.upgrade()


def downgrade() -> None:
    """Drop them."""
    m0004_conversations.downgrade()
