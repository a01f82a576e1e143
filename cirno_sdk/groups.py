"""The group calls of the public API: create, join, quit, detail, members, and the
group administration (dismiss, transfer, update, admins, mutes, applications).

Guarantees
----------
- Every call waits for the connection and retries (see :mod:`cirno_sdk.calls`) until
  ``request_deadline``; creating a group is the exception -- it is not retried after
  a lost response, since a retry could create a second group.
- When this account creates, joins or leaves a group, the order keeper is told before
  the call returns, so the group's next messages are ordered from the right sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cirno_sdk.calls import Caller
from cirno_sdk.convert import WIRE_POLICIES, group_info, member
from cirno_sdk.models import Application, GroupEvent, GroupInfo, JoinPolicy, Member
from data_plane.wire import Command, LogicPacket, pb


class GroupOrder(Protocol):
    """The part that orders group messages, told of our own membership changes."""

    def group_created(self, group_id: str) -> None:
        """We created ``group_id``."""

    def reset_group(self, group_id: str) -> None:
        """We joined or left ``group_id``."""


class Groups:
    """Group calls on behalf of the account ``me()`` returns (known after login)."""

    def __init__(
        self,
        calls: Caller,
        order: GroupOrder,
        *,
        me: Callable[[], str],
        request_deadline: float,
    ) -> None:
        self._calls = calls
        self._order = order
        self._me = me
        self._request_deadline = request_deadline

    def _deadline(self) -> float:
        return self._calls.deadline(self._request_deadline)

    async def create(
        self,
        name: str,
        members: list[str],
        *,
        avatar: str,
        introduction: str,
        policy: JoinPolicy = JoinPolicy.INVITE,
    ) -> str:
        """Create a group owned by this account; returns its id. Not retried once sent."""
        req = pb.GroupCreateReq(
            name=name,
            avatar=avatar,
            introduction=introduction,
            members=members,
            join_policy=WIRE_POLICIES[JoinPolicy(policy)],
        )
        packet = await self._calls.call(
            Command.CHAT_GROUP_CREATE, req, deadline=self._deadline(), retry_unanswered=False
        )
        group_id = packet.parse_body(pb.GroupCreateResp).group_id
        self._order.group_created(group_id)
        return group_id

    async def join(self, group_id: str, account: str) -> None:
        """Add ``account`` (owner or admin: an invite), or this account when empty (only an
        open group admits it; an approval group takes :meth:`apply`)."""
        req = pb.GroupJoinReq(account=account, group_id=group_id)
        await self._calls.call(Command.CHAT_GROUP_JOIN, req, deadline=self._deadline())
        if not account or account == self._me():
            self._order.reset_group(group_id)

    async def quit(self, group_id: str, account: str) -> None:
        """Remove ``account`` (empty: this account) from the group."""
        req = pb.GroupQuitReq(account=account, group_id=group_id)
        await self._calls.call(Command.CHAT_GROUP_QUIT, req, deadline=self._deadline())
        if not account or account == self._me():
            self._order.reset_group(group_id)

    async def detail(self, group_id: str) -> GroupInfo:
        """The group's name, owner, members, ..."""
        packet = await self._calls.call(
            Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id=group_id), deadline=self._deadline()
        )
        return group_info(packet.parse_body(pb.GroupGetResp))

    async def members(self, group_id: str) -> list[Member]:
        """All of the group's members, by join time (fetched page by page)."""
        members: list[Member] = []
        while True:
            packet = await self._calls.call(
                Command.CHAT_GROUP_MEMBERS,
                pb.GroupGetReq(group_id=group_id, offset=len(members)),
                deadline=self._deadline(),
            )
            page = packet.parse_body(pb.GroupMembersResp)
            members.extend(member(m) for m in page.members)
            if not page.has_more or not page.members:
                return members

    # -- administration (the server answers Forbidden to a caller without the role) -----

    async def dismiss(self, group_id: str) -> None:
        """Delete the group (owner only); its members get a "dismissed" event."""
        req = pb.GroupDismissReq(group_id=group_id)
        await self._calls.call(Command.CHAT_GROUP_DISMISS, req, deadline=self._deadline())
        self._order.reset_group(group_id)

    async def transfer(self, group_id: str, account: str) -> None:
        """Make the member ``account`` the owner (owner only); this account stays a member."""
        req = pb.GroupTransferReq(group_id=group_id, account=account)
        await self._calls.call(Command.CHAT_GROUP_TRANSFER, req, deadline=self._deadline())

    async def update(
        self,
        group_id: str,
        *,
        name: str | None = None,
        announcement: str | None = None,
        policy: JoinPolicy | None = None,
    ) -> None:
        """Change the name, announcement and/or join policy (owner or admin); ``None``
        leaves a field as it is."""
        req = pb.GroupUpdateReq(group_id=group_id)
        if name is not None:
            req.name = name
        if announcement is not None:
            req.announcement = announcement
        if policy is not None:
            req.join_policy = WIRE_POLICIES[JoinPolicy(policy)]
        await self._calls.call(Command.CHAT_GROUP_UPDATE, req, deadline=self._deadline())

    async def set_admin(self, group_id: str, account: str, admin: bool = True) -> None:
        """Make the member ``account`` an admin, or a plain member again (owner only)."""
        req = pb.GroupAdminReq(group_id=group_id, account=account, admin=admin)
        await self._calls.call(Command.CHAT_GROUP_ADMIN, req, deadline=self._deadline())

    async def mute(self, group_id: str, account: str = "", muted: bool = True) -> None:
        """Mute (or unmute) the member ``account``, or the whole group when ``account``
        is empty (owner or admin; the owner and admins still talk in a muted group)."""
        req = pb.GroupMuteReq(group_id=group_id, account=account, muted=muted)
        await self._calls.call(Command.CHAT_GROUP_MUTE, req, deadline=self._deadline())

    async def apply(self, group_id: str, message: str = "") -> bool:
        """Ask to join: True when this account is a member now (an open group), False
        when the application waits for the owner or an admin (an approval group)."""
        req = pb.GroupApplyReq(group_id=group_id, message=message)
        packet = await self._calls.call(Command.CHAT_GROUP_APPLY, req, deadline=self._deadline())
        joined = packet.parse_body(pb.GroupApplyResp).joined
        if joined:
            self._order.reset_group(group_id)
        return joined

    async def approve(self, group_id: str, account: str, accept: bool = True) -> None:
        """Accept (or refuse) ``account``'s pending application (owner or admin)."""
        req = pb.GroupApproveReq(group_id=group_id, account=account, accept=accept)
        await self._calls.call(Command.CHAT_GROUP_APPROVE, req, deadline=self._deadline())

    async def applications(self, group_id: str) -> list[Application]:
        """The pending applications, oldest first (owner or admin)."""
        packet = await self._calls.call(
            Command.CHAT_GROUP_APPLICATIONS,
            pb.GroupGetReq(group_id=group_id),
            deadline=self._deadline(),
        )
        found = packet.parse_body(pb.GroupApplicationsResp).applications
        return [Application(a.account, a.message, a.applied_at) for a in found]


ADMIN_NOTIFIES = frozenset(
    {
        Command.CHAT_GROUP_DISMISS,
        Command.CHAT_GROUP_TRANSFER,
        Command.CHAT_GROUP_UPDATE,
        Command.CHAT_GROUP_ADMIN,
        Command.CHAT_GROUP_MUTE,
        Command.CHAT_GROUP_APPLY,
        Command.CHAT_GROUP_APPROVE,
    }
)
"""The commands whose pushes :func:`admin_event` reads."""


def admin_event(packet: LogicPacket) -> GroupEvent:
    """The ``GroupEvent`` of a group-administration notify (see ``GroupEvent``'s kinds)."""
    command = packet.command
    if command == Command.CHAT_GROUP_DISMISS:
        gone = packet.parse_body(pb.GroupDismissNotify)
        return GroupEvent("dismissed", gone.group_id, (), gone.by)
    if command == Command.CHAT_GROUP_TRANSFER:
        moved = packet.parse_body(pb.GroupTransferNotify)
        owners = (moved.owner, moved.previous_owner)
        return GroupEvent("transferred", moved.group_id, owners, moved.previous_owner)
    if command == Command.CHAT_GROUP_UPDATE:
        new = packet.parse_body(pb.GroupUpdateNotify)
        policy = {v: k for k, v in WIRE_POLICIES.items()}.get(new.join_policy, JoinPolicy.INVITE)
        return GroupEvent("updated", new.group_id, (), new.by, str(policy))
    if command == Command.CHAT_GROUP_ADMIN:
        role = packet.parse_body(pb.GroupAdminNotify)
        kind = "admin" if role.admin else "unadmin"
        return GroupEvent(kind, role.group_id, (role.account,), role.by)
    if command == Command.CHAT_GROUP_MUTE:
        mute = packet.parse_body(pb.GroupMuteNotify)
        accounts = (mute.account,) if mute.account else ()
        return GroupEvent("muted" if mute.muted else "unmuted", mute.group_id, accounts, mute.by)
    if command == Command.CHAT_GROUP_APPLY:
        asked = packet.parse_body(pb.GroupApplyNotify)
        return GroupEvent("applied", asked.group_id, (asked.account,), "", asked.message)
    decided = packet.parse_body(pb.GroupApproveNotify)
    kind = "approved" if decided.accepted else "refused"
    return GroupEvent(kind, decided.group_id, (decided.account,), decided.by)
