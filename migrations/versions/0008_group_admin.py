"""Message store, group administration (join policy, announcement, admins, mutes, join
applications).

The tables are storage's: this revision runs the message store's revision ``m0002g``
(one definition, two histories, as ``0002``).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from data_plane.storage.messages.migrations.versions import m0002g_group_admin

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the group-administration columns and table."""
    m0002g_group_admin.upgrade()


def downgrade() -> None:
    """Remove the group-administration columns and table."""
    m0002g_group_admin.downgrade()
