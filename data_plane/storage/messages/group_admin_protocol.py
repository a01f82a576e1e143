"""The group-administration part of the ``MessageStore`` contract: access, updates,
roles and mutes, ownership, dismissal and join applications.

``protocol.MessageStore`` inherits it; the memory and SQL stores implement it
(``memory_groups.py``, ``group_admin.py``), and ``tests/storage/test_group_admin_contract.py``
runs the same suite on each. Every method is scoped by tenant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from data_plane.storage.messages.group_model import Access, Application, GroupChanges, Role

if TYPE_CHECKING:
    from data_plane.storage.messages.protocol import Group


class GroupAdministration(Protocol):
    """Group administration (see the module docstring)."""

    async def group_access(self, tenant: str, group_id: str, account: str) -> Access | None:
        """The group's owner, policy and mute and ``account``'s membership, role and mute,
        in one read; None when the group does not exist."""
        ...

    async def update_group(self, tenant: str, group_id: str, changes: GroupChanges) -> Group:
        """Apply ``changes`` (``None`` fields stay) and return the group as it is then.
        Raises ``GroupNotFound``, ``InvalidField`` for a name or announcement too long."""
        ...

    async def set_member(
        self,
        tenant: str,
        group_id: str,
        account: str,
        *,
        role: Role | None = None,
        muted: bool | None = None,
    ) -> bool:
        """Set a member's role and/or mute; False when ``account`` is not a member.
        Raises ``GroupNotFound``."""
        ...

    async def transfer_group(self, tenant: str, group_id: str, new_owner: str) -> bool:
        """Make the member ``new_owner`` the owner (its role becomes ``MEMBER``; the old
        owner stays a plain member); False when ``new_owner`` is not a member. Raises
        ``GroupNotFound``."""
        ...

    async def dismiss_group(self, tenant: str, group_id: str) -> list[str]:
        """Delete the group, its members and applications in one transaction and return
        who the members were; its stored messages stay in the inboxes. Afterwards every
        operation on the id raises ``GroupNotFound``. Raises ``GroupNotFound``."""
        ...

    async def add_application(self, tenant: str, group_id: str, account: str, message: str) -> bool:
        """Record ``account``'s application to join; False when one is already pending
        (it is left as it was). Raises ``GroupNotFound``, ``InvalidField``."""
        ...

    async def applications(self, tenant: str, group_id: str) -> list[Application]:
        """The pending applications, oldest first. Raises ``GroupNotFound``."""
        ...

    async def take_application(self, tenant: str, group_id: str, account: str) -> bool:
        """Remove ``account``'s pending application; False when there was none."""
        ...
