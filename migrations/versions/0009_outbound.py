"""Message store, outbound: the webhook outbox and deliveries, push tokens and jobs.

The tables are storage's: this revision runs the message store's revision ``m0003o``
(``data_plane/storage/messages/migrations/versions/m0003_outbound.py``), one definition
and two histories, as ``0002``.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.messages.migrations.versions import m0003_outbound

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the outbound message tables."""
    m0003_outbound.upgrade()


def downgrade() -> None:
    """Drop the outbound message tables."""
    m0003_outbound.downgrade()
