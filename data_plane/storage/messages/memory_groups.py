"""The group part of ``MemoryMessageStore``: groups, membership and administration.

``MemoryMessageStore`` extends :class:`MemoryGroups`; both keep the memory store's rule:
every operation mutates plain dicts without awaiting in between (atomic on the event
loop), then yields once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import anyio.lowlevel

from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.group_model import (
    Access,
    Application,
    GroupChanges,
    JoinPolicy,
    Role,
)
from data_plane.storage.messages.protocol import (
    Group,
    GroupNotFound,
    Member,
    check_application,
    check_changes,
    check_group_fields,
    check_id,
    new_group_id,
    unique_members,
)


@dataclass(slots=True)
class _Group:
    group_id: str
    name: str
    avatar: str
    introduction: str
    owner: str
    created_at: int
    seq: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    announcement: str = ""
    join_policy: JoinPolicy = JoinPolicy.INVITE
    muted: bool = False
    applications: dict[str, Application] = field(default_factory=dict)

    def sorted_members(self) -> list[Member]:
        return sorted(self.members.values(), key=lambda m: (m.join_time, m.account))


class MemoryGroups:
    """Groups in process memory; the subclass sets ``_ids``, ``_groups`` and ``_closed``."""

    _ids: SnowflakeIds
    _groups: dict[tuple[str, str], _Group]
    _closed: bool

    def _check_open(self) -> None:
        if self._closed:
            raise MessageStoreUnavailable("the message store is closed")

    def _group(self, tenant: str, group_id: str) -> _Group:
        group = self._groups.get((tenant, group_id))
        if group is None:
            raise GroupNotFound(f"group {group_id!r} does not exist")
        return group

    @staticmethod
    def _public(group: _Group) -> Group:
        return Group(
            group_id=group.group_id,
            name=group.name,
            avatar=group.avatar,
            introduction=group.introduction,
            owner=group.owner,
            created_at=group.created_at,
            members=group.sorted_members(),
            announcement=group.announcement,
            join_policy=group.join_policy,
            muted=group.muted,
        )

    async def create_group(
        self,
        tenant: str,
        owner: str,
        name: str,
        avatar: str,
        introduction: str,
        members: Sequence[str],
        join_policy: JoinPolicy = JoinPolicy.INVITE,
    ) -> Group:
        """See ``MessageStore.create_group``."""
        check_id("tenant", tenant)
        check_id("owner", owner)
        check_group_fields(name, avatar, introduction)
        accounts = unique_members(owner, members)
        self._check_open()
        created_at = self._ids.now_ms()
        group = _Group(new_group_id(), name, avatar, introduction, owner, created_at)
        group.join_policy = JoinPolicy(join_policy)
        for account in accounts:
            group.members[account] = Member(account, "", "", created_at)
        self._groups[(tenant, group.group_id)] = group
        await anyio.lowlevel.checkpoint()
        return self._public(group)

    async def join_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.join_group``."""
        check_id("account", account)
        self._check_open()
        group = self._group(tenant, group_id)
        joined = account not in group.members
        group.applications.pop(account, None)
        if joined:
            group.members[account] = Member(account, "", "", self._ids.now_ms())
        await anyio.lowlevel.checkpoint()
        return joined

    async def quit_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.quit_group``."""
        self._check_open()
        group = self._group(tenant, group_id)
        left = group.members.pop(account, None) is not None
        await anyio.lowlevel.checkpoint()
        return left

    async def get_group(self, tenant: str, group_id: str) -> Group:
        """See ``MessageStore.get_group``."""
        self._check_open()
        group = self._public(self._group(tenant, group_id))
        await anyio.lowlevel.checkpoint()
        return group

    async def members(self, tenant: str, group_id: str) -> list[Member]:
        """See ``MessageStore.members``."""
        self._check_open()
        members = self._group(tenant, group_id).sorted_members()
        await anyio.lowlevel.checkpoint()
        return members

    async def is_member(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.is_member``."""
        self._check_open()
        group = self._groups.get((tenant, group_id))
        await anyio.lowlevel.checkpoint()
        return group is not None and account in group.members

    async def group_access(self, tenant: str, group_id: str, account: str) -> Access | None:
        """See ``MessageStore.group_access``."""
        self._check_open()
        group = self._groups.get((tenant, group_id))
        await anyio.lowlevel.checkpoint()
        if group is None:
            return None
        member = group.members.get(account)
        return Access(
            owner=group.owner,
            join_policy=group.join_policy,
            group_muted=group.muted,
            member=member is not None,
            role=member.role if member is not None else Role.MEMBER,
            muted=member is not None and member.muted,
        )

    async def update_group(self, tenant: str, group_id: str, changes: GroupChanges) -> Group:
        """See ``MessageStore.update_group``."""
        check_changes(changes)
        self._check_open()
        group = self._group(tenant, group_id)
        if changes.name is not None:
            group.name = changes.name
        if changes.announcement is not None:
            group.announcement = changes.announcement
        if changes.join_policy is not None:
            group.join_policy = JoinPolicy(changes.join_policy)
        if changes.muted is not None:
            group.muted = changes.muted
        await anyio.lowlevel.checkpoint()
        return self._public(group)

    async def set_member(
        self,
        tenant: str,
        group_id: str,
        account: str,
        *,
        role: Role | None = None,
        muted: bool | None = None,
    ) -> bool:
        """See ``MessageStore.set_member``."""
        self._check_open()
        group = self._group(tenant, group_id)
        member = group.members.get(account)
        await anyio.lowlevel.checkpoint()
        if member is None:
            return False
        new_role = member.role if role is None else Role(role)
        new_muted = member.muted if muted is None else muted
        group.members[account] = replace(member, role=new_role, muted=new_muted)
        return True

    async def transfer_group(self, tenant: str, group_id: str, new_owner: str) -> bool:
        """See ``MessageStore.transfer_group``."""
        self._check_open()
        group = self._group(tenant, group_id)
        member = group.members.get(new_owner)
        await anyio.lowlevel.checkpoint()
        if member is None:
            return False
        group.owner = new_owner
        group.members[new_owner] = replace(member, role=Role.MEMBER)
        return True

    async def dismiss_group(self, tenant: str, group_id: str) -> list[str]:
        """See ``MessageStore.dismiss_group``."""
        self._check_open()
        group = self._group(tenant, group_id)
        del self._groups[(tenant, group_id)]
        await anyio.lowlevel.checkpoint()
        return [m.account for m in group.sorted_members()]

    async def add_application(self, tenant: str, group_id: str, account: str, message: str) -> bool:
        """See ``MessageStore.add_application``."""
        check_id("account", account)
        check_application(message)
        self._check_open()
        group = self._group(tenant, group_id)
        await anyio.lowlevel.checkpoint()
        if account in group.applications:
            return False
        group.applications[account] = Application(account, message, self._ids.now_ms())
        return True

    async def applications(self, tenant: str, group_id: str) -> list[Application]:
        """See ``MessageStore.applications``."""
        self._check_open()
        group = self._group(tenant, group_id)
        await anyio.lowlevel.checkpoint()
        return sorted(group.applications.values(), key=lambda a: (a.applied_at, a.account))

    async def take_application(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.take_application``."""
        self._check_open()
        group = self._groups.get((tenant, group_id))
        await anyio.lowlevel.checkpoint()
        return group is not None and group.applications.pop(account, None) is not None
