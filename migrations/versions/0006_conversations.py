"""Message store: conversations, recall tombstones, delete-for-me, the history index.

Runs the message store's own revision ``m0002``
(``data_plane/storage/messages/migrations/versions/m0002_conversations.py``), which a
dedicated tenant database receives alone. One definition, two histories.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.messages.migrations.versions import m0002_conversations

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the conversation tables, the tombstone column and the history index."""
    m0002_conversations.upgrade()


def downgrade() -> None:
    """Drop them."""
    m0002_conversations.downgrade()
