"""Group chat: create, join, quit, detail, members and talk (write diffusion).

Rules: the caller of ``chat.group.create`` is the owner (the body's owner is ignored)
and always a member. An account may join or quit itself; the owner may add or remove
others; the owner cannot quit its own group. Only members see detail and members, and
only members talk. A group message is stored once with the next per-group sequence and
one inbox row per member, in one transaction; the push carries that sequence and the
group id and reaches every online member except the sending connection, each channel
addressed with its member's inbox sequence (``seqs`` meta); the answer carries the
sender's (``MessageResp.inbox_seq``).
"""

from __future__ import annotations

from data_plane.logic.context import Request
from data_plane.logic.handlers.chat import message_push
from data_plane.logic.pushes import Pusher, PushPart
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.protocol import Group
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
        )


class GroupHandlers:
    """The ``chat.group.*`` commands."""

    def __init__(self, stores: TenantStores, pusher: Pusher) -> None:
        self._stores = stores
        self._pusher = pusher

    async def _notify(self, request: Request, accounts: list[str], packet: LogicPacket) -> None:
        await self._pusher.push(request.tenant, request.channel_id, [PushPart(accounts, packet)])

    async def create(self, request: Request) -> None:
        """Create a group owned by the caller; notify its online members."""
        store = await self._stores.get(request.tenant, write=True)
        req = request.packet.parse_body(pb.GroupCreateReq)
        members = list(dict.fromkeys([request.account, *req.members]))
        if len(members) > MAX_GROUP_MEMBERS:
            request.fail(Status.TOO_LARGE, f"a group has at most {MAX_GROUP_MEMBERS} members")
            return
        if not req.name:
            request.fail(Status.INVALID_PACKET_BODY, "a group needs a name")
            return
        group = await store.create_group(
            request.tenant, request.account, req.name, req.avatar, req.introduction, members
        )
        request.reply(body=pb.GroupCreateResp(group_id=group.group_id))
        accounts = [m.account for m in group.members]
        notify = LogicPacket.make_push(
            Command.CHAT_GROUP_CREATE,
            pb.GroupCreateNotify(group_id=group.group_id, members=accounts),
        )
        await self._notify(request, accounts, notify)

    async def _membership_change(self, request: Request, joining: bool) -> None:
        store = await self._stores.get(request.tenant)
        req: pb.GroupJoinReq | pb.GroupQuitReq
        if joining:
            req = request.packet.parse_body(pb.GroupJoinReq)
        else:
            req = request.packet.parse_body(pb.GroupQuitReq)
        target = req.account or request.account
        if not req.group_id:
            request.fail(Status.INVALID_PACKET_BODY, "group_id is required")
            return
        group = await store.get_group(request.tenant, req.group_id)
        if target != request.account and request.account != group.owner:
            request.fail(Status.FORBIDDEN, "only the owner may add or remove others")
            return
        if not joining and target == group.owner:
            request.fail(Status.FORBIDDEN, "the owner cannot quit the group")
            return
        if joining:
            if len(group.members) >= MAX_GROUP_MEMBERS:
                request.fail(Status.TOO_LARGE, f"a group has at most {MAX_GROUP_MEMBERS} members")
                return
            changed = await store.join_group(request.tenant, req.group_id, target)
        else:
            changed = await store.quit_group(request.tenant, req.group_id, target)
        request.reply()
        if not changed:
            return
        accounts = [m.account for m in group.members if m.account != target] + [target]
        notify = (
            LogicPacket.make_push(
                Command.CHAT_GROUP_JOIN, pb.GroupJoinNotify(group_id=req.group_id, account=target)
            )
            if joining
            else LogicPacket.make_push(
                Command.CHAT_GROUP_QUIT, pb.GroupQuitNotify(group_id=req.group_id, account=target)
            )
        )
        await self._notify(request, accounts, notify)

    async def join(self, request: Request) -> None:
        """Join the group (self), or add someone (owner only)."""
        await self._membership_change(request, joining=True)

    async def quit(self, request: Request) -> None:
        """Quit the group (self), or remove someone (owner only)."""
        await self._membership_change(request, joining=False)

    async def _member_group(self, request: Request) -> Group | None:
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupGetReq)
        if not req.group_id:
            request.fail(Status.INVALID_PACKET_BODY, "group_id is required")
            return None
        group = await store.get_group(request.tenant, req.group_id)
        if all(m.account != request.account for m in group.members):
            request.fail(Status.FORBIDDEN, "only members may see the group")
            return None
        return group

    async def detail(self, request: Request) -> None:
        """The group with its first page of members and the member count (members only)."""
        group = await self._member_group(request)
        if group is not None:
            resp = pb.GroupGetResp(
                id=group.group_id,
                name=group.name,
                avatar=group.avatar,
                introduction=group.introduction,
                owner=group.owner,
                created_at=group.created_at,
                member_count=len(group.members),
            )
            _add_members(resp, group, 0, MEMBERS_PAGE)
            request.reply(body=resp)

    async def members(self, request: Request) -> None:
        """A page of the group's members (members only): ``offset`` and ``limit`` of the
        request (cirno extensions) pick it; kim clients get the first page."""
        group = await self._member_group(request)
        if group is not None:
            req = request.packet.parse_body(pb.GroupGetReq)
            offset = max(0, req.offset)
            limit = min(req.limit, MEMBERS_PAGE) if req.limit > 0 else MEMBERS_PAGE
            resp = pb.GroupMembersResp(
                has_more=offset + limit < len(group.members), member_count=len(group.members)
            )
            _add_members(resp, group, offset, limit)
            request.reply(body=resp)

    async def talk(self, request: Request) -> None:
        """Store once with the next group sequence, one inbox row per member; push."""
        store = await self._stores.get(request.tenant, write=True)
        group_id = request.packet.dest
        if not group_id:
            request.fail(Status.NO_DESTINATION, "chat.group.talk needs the group id in dest")
            return
        req = request.packet.parse_body(pb.MessageReq)
        result, members = await store.send_group_message(
            request.tenant,
            request.account,
            group_id,
            req.type,
            req.body.encode(),
            req.extra,
            req.client_msg_id or None,
        )
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
        push = message_push(
            Command.CHAT_GROUP_TALK, req, request.account, group_id, result, group_id
        )
        seqs = dict(zip(members, result.member_seqs, strict=True))
        await self._pusher.push(request.tenant, request.channel_id, [PushPart(members, push, seqs)])
