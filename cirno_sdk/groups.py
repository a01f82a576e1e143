"""The group calls of the public API: create, join, quit, detail, members.

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
from cirno_sdk.convert import group_info, member
from cirno_sdk.models import GroupInfo, Member
from data_plane.wire import Command, pb


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

    async def create(self, name: str, members: list[str], *, avatar: str, introduction: str) -> str:
        """Create a group owned by this account; returns its id. Not retried once sent."""
        req = pb.GroupCreateReq(
            name=name, avatar=avatar, introduction=introduction, members=members
        )
        packet = await self._calls.call(
            Command.CHAT_GROUP_CREATE, req, deadline=self._deadline(), retry_unanswered=False
        )
        group_id = packet.parse_body(pb.GroupCreateResp).group_id
        self._order.group_created(group_id)
        return group_id

    async def join(self, group_id: str, account: str) -> None:
        """Add ``account`` (empty: this account) to the group."""
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
