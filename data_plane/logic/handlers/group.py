"""Group chat: create, join, quit, detail, members and talk (write diffusion).

Rules (``group_access`` holds the shared checks): the caller of ``chat.group.create``
is the owner (the body's owner is ignored) and always a member, and the members it names
are members; a new group is invite-only unless the request says otherwise. Only members
see detail and members and talk; to anyone else a group that exists and one that does
not look the same (NotFound). ``chat.group.join`` naming another account is an invite
by the owner or an admin; naming oneself (or no one) joins an open group. A member quits
itself; the owner or an admin removes others (an admin not the owner nor another admin);
the owner cannot quit (it transfers or dismisses). A muted member, or a plain member of
a muted group, does not talk. Every account named must be an account name
(``logic.names``).

The tenant's system sender (``identity.SYSTEM_SENDER``, which no client can be; the
server API sends as it) talks in any group without being a member.

A group message is stored once with the next per-group sequence and one inbox row per
member, in one transaction; the push carries that sequence and the group id and reaches
every online member except the sending connection, each channel addressed with its
member's inbox sequence (``seqs`` meta); the answer carries the sender's
(``MessageResp.inbox_seq``). A message whose push would not fit a client packet is
refused before it is stored (``logic.push_size``). After the membership and mute checks
the tenant's moderation hook, if it has one, may refuse the message or replace its body
(``logic.moderation.gate``).
"""

from __future__ import annotations

from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.logic import names
from data_plane.logic.context import Request
from data_plane.logic.handlers.chat import message_push
from data_plane.logic.handlers.group_access import (
    group_id_of,
    hidden,
    join_policy_of,
    member_access,
    require_manager,
    require_talk,
)
from data_plane.logic.handlers.group_admin import GroupAdminHandlers
from data_plane.logic.moderation.gate import ModerationGate
from data_plane.logic.outbound_hooks import OutboundHooks
from data_plane.logic.push_size import refuse_oversize_push
from data_plane.logic.pushes import Pusher, PushPart
from data_plane.logic.refusal import Refused
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.group_model import JoinPolicy, Role
from data_plane.storage.messages.protocol import Group, GroupNotFound, NotAMember
from data_plane.wire import Command, LogicPacket, Status, pb

MAX_GROUP_MEMBERS = 10_000
MEMBERS_PAGE = 1_000
"""Members per ``chat.group.members`` page (and in ``chat.group.detail``)."""


def _add_members(
    resp: pb.GroupGetResp | pb.GroupMembersResp, group: Group, offset: int, limit: int
) -> None:
    for member in group.members[offset : offset + limit]:
        resp.members.add(
            account=member.account,
            alias=member.alias,
            avatar=member.avatar,
            join_time=member.join_time,
            admin=member.role == Role.ADMIN,
            muted=member.muted,
        )


class GroupHandlers:
    """The ``chat.group.*`` commands kim knows (administration: ``group_admin``)."""

    def __init__(
        self,
        stores: TenantStores,
        pusher: Pusher,
        hooks: OutboundHooks | None = None,
        moderation: ModerationGate | None = None,
    ) -> None:
        self._stores = stores
        self._pusher = pusher
        self._hooks = hooks or OutboundHooks()
        self._moderation = moderation
        self.admin = GroupAdminHandlers(stores, pusher, self._hooks)
        """The administration commands, on the same stores and pusher."""

    async def _notify(self, request: Request, accounts: list[str], packet: LogicPacket) -> None:
        await self._pusher.push(request.tenant, request.channel_id, [PushPart(accounts, packet)])

    async def create(self, request: Request) -> None:
        """Create a group owned by the caller; notify its online members."""
        store = await self._stores.get(request.tenant, write=True)
        req = request.packet.parse_body(pb.GroupCreateReq)
        members = list(dict.fromkeys([request.account, *names.accounts(req.members, "member")]))
        if len(members) > MAX_GROUP_MEMBERS:
            request.fail(Status.TOO_LARGE, f"a group has at most {MAX_GROUP_MEMBERS} members")
            return
        if not req.name:
            request.fail(Status.INVALID_PACKET_BODY, "a group needs a name")
            return
        group = await store.create_group(
            request.tenant,
            request.account,
            req.name,
            req.avatar,
            req.introduction,
            members,
            join_policy_of(req.join_policy),
        )
        request.reply(body=pb.GroupCreateResp(group_id=group.group_id))
        accounts = [m.account for m in group.members]
        notify = LogicPacket.make_push(
            Command.CHAT_GROUP_CREATE,
            pb.GroupCreateNotify(group_id=group.group_id, members=accounts),
        )
        await self._notify(request, accounts, notify)
        await self._hooks.group_created(request.tenant, group)

    async def join(self, request: Request) -> None:
        """Join an open group (self), or add someone (owner or admin: an invite)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupJoinReq)
        group_id = group_id_of(req.group_id)
        target = names.account(req.account, "account") if req.account else request.account
        access = await store.group_access(request.tenant, group_id, request.account)
        if access is None:
            raise hidden(group_id)
        if target == request.account:
            if not access.member and access.join_policy != JoinPolicy.OPEN:
                if access.join_policy == JoinPolicy.APPROVAL:
                    raise Refused(
                        Status.FORBIDDEN, "this group admits members by approval: apply to join"
                    )
                raise hidden(group_id)
        else:
            if not access.member:
                raise hidden(group_id)
            require_manager(access, request, "add members")
        group = await store.get_group(request.tenant, group_id)
        if len(group.members) >= MAX_GROUP_MEMBERS:
            request.fail(Status.TOO_LARGE, f"a group has at most {MAX_GROUP_MEMBERS} members")
            return
        changed = await store.join_group(request.tenant, group_id, target)
        request.reply()
        if changed:
            accounts = [m.account for m in group.members if m.account != target] + [target]
            notify = pb.GroupJoinNotify(group_id=group_id, account=target)
            await self._notify(
                request, accounts, LogicPacket.make_push(Command.CHAT_GROUP_JOIN, notify)
            )
            await self._hooks.members_changed(
                request.tenant, group_id, joined=[target], left=[], by=request.account
            )

    async def quit(self, request: Request) -> None:
        """Quit the group (self), or remove someone (owner, or an admin a plain member)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupQuitReq)
        group_id = group_id_of(req.group_id)
        target = names.account(req.account, "account") if req.account else request.account
        access = await member_access(store, request, group_id)
        if target == access.owner:
            raise Refused(
                Status.FORBIDDEN,
                "the owner cannot quit or be removed: transfer or dismiss the group",
            )
        if target != request.account:
            require_manager(access, request, "remove others")
            if access.owner != request.account:
                other = await store.group_access(request.tenant, group_id, target)
                if other is not None and other.member and other.role == Role.ADMIN:
                    raise Refused(Status.FORBIDDEN, "only the owner may remove an admin")
        members = await store.members(request.tenant, group_id)
        changed = await store.quit_group(request.tenant, group_id, target)
        request.reply()
        if changed:
            accounts = [m.account for m in members]
            notify = pb.GroupQuitNotify(group_id=group_id, account=target)
            await self._notify(
                request, accounts, LogicPacket.make_push(Command.CHAT_GROUP_QUIT, notify)
            )
            await self._hooks.members_changed(
                request.tenant, group_id, joined=[], left=[target], by=request.account
            )

    async def _member_group(self, request: Request) -> Group:
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupGetReq)
        group_id = group_id_of(req.group_id)
        await member_access(store, request, group_id)
        try:
            return await store.get_group(request.tenant, group_id)
        except GroupNotFound:
            raise hidden(group_id) from None

    async def detail(self, request: Request) -> None:
        """The group with its first page of members and the member count (members only)."""
        group = await self._member_group(request)
        resp = pb.GroupGetResp(
            id=group.group_id,
            name=group.name,
            avatar=group.avatar,
            introduction=group.introduction,
            owner=group.owner,
            created_at=group.created_at,
            member_count=len(group.members),
            announcement=group.announcement,
            join_policy=int(group.join_policy),  # type: ignore[arg-type]
            muted=group.muted,
        )
        _add_members(resp, group, 0, MEMBERS_PAGE)
        request.reply(body=resp)

    async def members(self, request: Request) -> None:
        """A page of the group's members (members only): ``offset`` and ``limit`` of the
        request (cirno extensions) pick it; kim clients get the first page."""
        group = await self._member_group(request)
        req = request.packet.parse_body(pb.GroupGetReq)
        offset = max(0, req.offset)
        limit = min(req.limit, MEMBERS_PAGE) if req.limit > 0 else MEMBERS_PAGE
        resp = pb.GroupMembersResp(
            has_more=offset + limit < len(group.members), member_count=len(group.members)
        )
        _add_members(resp, group, offset, limit)
        request.reply(body=resp)

    async def talk(self, request: Request) -> None:
        """Check membership and mutes, store once with the next group sequence and one
        inbox row per member, then push."""
        store = await self._stores.get(request.tenant, write=True)
        group_id = request.packet.dest
        if not group_id:
            request.fail(Status.NO_DESTINATION, "chat.group.talk needs the group id in dest")
            return
        req = request.packet.parse_body(pb.MessageReq)
        command, sender = Command.CHAT_GROUP_TALK, request.account
        refuse_oversize_push(
            lambda result, _: message_push(command, req, sender, group_id, result, group_id),
            request.max_answer_size,
            raw_body=len(request.packet.body),
            strings=command + group_id + sender + group_id,
        )
        if request.account != SYSTEM_SENDER:  # the server API's sender: any group
            require_talk(await member_access(store, request, group_id), request)
        if self._moderation is not None:  # the tenant's hook may refuse or rewrite it
            req = await self._moderation.screen(
                request,
                req,
                receiver="",
                group=group_id,
                push_of=lambda r: (
                    lambda result, _: message_push(command, r, sender, group_id, result, group_id)
                ),
            )
        try:
            result, members = await store.send_group_message(
                request.tenant,
                request.account,
                group_id,
                req.type,
                req.body.encode(),
                req.extra,
                req.client_msg_id or None,
            )
        except (GroupNotFound, NotAMember):
            raise hidden(group_id) from None  # dismissed or left since the check
        request.reply(
            body=pb.MessageResp(
                messageId=result.message_id,
                sendTime=result.send_time,
                seq=result.seq,
                inbox_seq=result.inbox_seq,
            )
        )
        if result.duplicate or not members:
            return
        push = message_push(command, req, request.account, group_id, result, group_id)
        seqs = dict(zip(members, result.member_seqs, strict=True))
        await self._pusher.push(request.tenant, request.channel_id, [PushPart(members, push, seqs)])
        await self._hooks.message_stored(  # push notifications to members with no device online
            request.tenant,
            [m for m in members if m != request.account],
            sender=request.account,
            group_id=group_id,
            message_id=result.message_id,
            body=req.body,
        )
