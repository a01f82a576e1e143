"""Message store: messages, inboxes, read indexes, groups.

The tables are storage's: this revision runs the message store's own revision
``m0001`` (``data_plane/storage/messages/migrations/versions/m0001_message_tables.py``),
which a dedicated tenant database receives alone (``data_plane.storage.messages.migrate``).
One definition, two histories.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.messages.migrations.versions import m0001_message_tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the message store's tables."""
    m0001_message_tables.upgrade()


def downgrade() -> None:
    """Drop the message store's tables."""
    m0001_message_tables.downgrade()
