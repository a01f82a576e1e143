"""In-memory ``MessageStore``: the reference behaviour of the contract, no durability.

Every operation mutates plain dicts without awaiting in between, so each one is atomic
on the event loop, then yields once (as a database round trip would) before returning.
Used by tests and by a logic node started without a database URL.
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
    Content,
    Direction,
    Group,
    GroupNotFound,
    InboxMessage,
    IndexEntry,
    IndexPage,
    Member,
    NotAMember,
    SendResult,
    StoredMessage,
    UnknownMessage,
    check_application,
    check_changes,
    check_device,
    check_group_fields,
    check_id,
    check_message,
    first_occurrences,
    new_group_id,
    unique_members,
)


@dataclass(slots=True)
class _Inbox:
    entries: list[IndexEntry] = field(default_factory=list)
    seq_of: dict[int, int] = field(default_factory=dict)

    def append(
        self, message_id: int, direction: Direction, send_time: int, account_b: str, group: str
    ) -> None:
        seq = len(self.entries) + 1
        self.entries.append(IndexEntry(message_id, direction, send_time, account_b, group, seq))
        self.seq_of[message_id] = seq


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


class MemoryMessageStore:
    """A ``MessageStore`` kept in process memory (lost on exit)."""

    def __init__(self, *, node_id: int = 0, ids: SnowflakeIds | None = None) -> None:
        self._ids = ids if ids is not None else SnowflakeIds(node_id)
        self._messages: dict[tuple[str, int], StoredMessage] = {}
        self._client_ids: dict[tuple[str, str, str], int] = {}
        self._inboxes: dict[tuple[str, str], _Inbox] = {}
        self._read: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise MessageStoreUnavailable("the message store is closed")

    def _inbox(self, tenant: str, account: str) -> _Inbox:
        inbox = self._inboxes.get((tenant, account))
        if inbox is None:
            inbox = self._inboxes[(tenant, account)] = _Inbox()
        return inbox

    def _original(self, tenant: str, sender: str, client_msg_id: str | None) -> SendResult | None:
        if client_msg_id is None:
            return None
        message_id = self._client_ids.get((tenant, sender, client_msg_id))
        if message_id is None:
            return None
        stored = self._messages[(tenant, message_id)]
        return SendResult(message_id, stored.send_time, duplicate=True, seq=stored.group_seq)

    def _store(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        group_id: str,
        group_seq: int,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> StoredMessage:
        message_id = self._ids.next_id()
        stored = StoredMessage(
            message_id=message_id,
            sender=sender,
            receiver=receiver,
            group_id=group_id,
            group_seq=group_seq,
            type=type,
            body=bytes(body),
            extra=extra,
            client_msg_id=client_msg_id,
            send_time=SnowflakeIds.time_of(message_id),
        )
        self._messages[(tenant, message_id)] = stored
        if client_msg_id is not None:
            self._client_ids[(tenant, sender, client_msg_id)] = message_id
        return stored

    async def send_user_message(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> SendResult:
        """See ``MessageStore.send_user_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("receiver", receiver)
        self._check_open()
        result = self._original(tenant, sender, client_msg_id)
        if result is None:
            m = self._store(tenant, sender, receiver, "", 0, type, body, extra, client_msg_id)
            if receiver != sender:
                self._inbox(tenant, receiver).append(
                    m.message_id, Direction.RECEIVED, m.send_time, sender, ""
                )
            own = self._inbox(tenant, sender)
            own.append(m.message_id, Direction.SENT, m.send_time, receiver, "")
            receiver_seq = self._inbox(tenant, receiver).seq_of[m.message_id]
            result = SendResult(
                m.message_id,
                m.send_time,
                duplicate=False,
                seq=0,
                inbox_seq=own.seq_of[m.message_id],
                receiver_inbox_seq=receiver_seq,
            )
        await anyio.lowlevel.checkpoint()
        return result

    async def send_group_message(
        self,
        tenant: str,
        sender: str,
        group_id: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> tuple[SendResult, list[str]]:
        """See ``MessageStore.send_group_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("group_id", group_id)
        self._check_open()
        original = self._original(tenant, sender, client_msg_id)
        if original is not None:
            await anyio.lowlevel.checkpoint()
            return original, []
        group = self._group(tenant, group_id)
        if sender not in group.members:
            raise NotAMember(f"{sender!r} is not a member of group {group_id!r}")
        group.seq += 1
        seq = group.seq
        m = self._store(tenant, sender, "", group_id, seq, type, body, extra, client_msg_id)
        receivers = [member.account for member in group.sorted_members()]
        seqs: list[int] = []
        for account in receivers:
            direction = Direction.SENT if account == sender else Direction.RECEIVED
            inbox = self._inbox(tenant, account)
            inbox.append(m.message_id, direction, m.send_time, sender, group_id)
            seqs.append(len(inbox.entries))
        await anyio.lowlevel.checkpoint()
        own = seqs[receivers.index(sender)]
        result = SendResult(m.message_id, m.send_time, False, seq, own, 0, tuple(seqs))
        return result, receivers

    async def ack(self, tenant: str, account: str, device: str, message_id: int) -> bool:
        """See ``MessageStore.ack``."""
        check_device(device)
        self._check_open()
        inbox = self._inboxes.get((tenant, account))
        seq = inbox.seq_of.get(message_id) if inbox is not None else None
        if seq is None:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        current = self._read.get((tenant, account, device))
        moved = current is None or seq > current[1]
        if moved:
            self._read[(tenant, account, device)] = (message_id, seq)
        await anyio.lowlevel.checkpoint()
        return moved

    async def list_index(
        self, tenant: str, account: str, device: str, after_message_id: int, limit: int
    ) -> IndexPage:
        """See ``MessageStore.list_index``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._check_open()
        inbox = self._inboxes.get((tenant, account), _Inbox())
        if after_message_id:
            after = inbox.seq_of.get(after_message_id)
            if after is None:
                raise UnknownMessage(
                    f"message {after_message_id} is not in the inbox of {account!r}"
                )
        else:
            after = self._read.get((tenant, account, device), (0, 0))[1]
        # seq n sits at list position n - 1, so the rows after seq ``after`` start there.
        entries = inbox.entries[after : after + limit + 1]
        await anyio.lowlevel.checkpoint()
        return IndexPage(entries[:limit], has_more=len(entries) > limit)

    async def inbox_heads(self, tenant: str, accounts: Sequence[str]) -> dict[str, int]:
        """See ``MessageStore.inbox_heads``."""
        self._check_open()
        heads = {}
        for account in accounts:
            inbox = self._inboxes.get((tenant, account))
            heads[account] = len(inbox.entries) if inbox is not None else 0
        await anyio.lowlevel.checkpoint()
        return heads

    async def read_inbox(
        self, tenant: str, account: str, after_seq: int, limit: int
    ) -> list[InboxMessage]:
        """See ``MessageStore.read_inbox``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._check_open()
        inbox = self._inboxes.get((tenant, account), _Inbox())
        rows = []
        for entry in inbox.entries[max(0, after_seq) : max(0, after_seq) + limit]:
            m = self._messages[(tenant, entry.message_id)]
            rows.append(
                InboxMessage(
                    entry.seq,
                    entry.message_id,
                    entry.direction,
                    entry.account_b,
                    entry.group_id,
                    m.group_seq,
                    entry.send_time,
                    m.type,
                    m.body,
                    m.extra,
                    m.client_msg_id or "",
                )
            )
        await anyio.lowlevel.checkpoint()
        return rows

    async def get_contents(
        self, tenant: str, account: str, message_ids: Sequence[int]
    ) -> list[Content]:
        """See ``MessageStore.get_contents``."""
        self._check_open()
        inbox = self._inboxes.get((tenant, account), _Inbox())
        contents = []
        for message_id in first_occurrences(message_ids):
            if message_id in inbox.seq_of:
                m = self._messages[(tenant, message_id)]
                contents.append(Content(m.message_id, m.type, m.body, m.extra))
        await anyio.lowlevel.checkpoint()
        return contents

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

    async def aclose(self) -> None:
        """Refuse further operations (the data stays in memory until collected)."""
        self._closed = True
