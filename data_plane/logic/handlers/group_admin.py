"""Group administration: dismiss, transfer, update, admins, mutes, applications.

Every command here is refused to non-members exactly as a missing group is
(``group_access.hidden``), but ``chat.group.apply`` to an open or approval group. Who may
do what (Forbidden, 403, otherwise):

=========================  ================================================================
command                    allowed to
=========================  ================================================================
chat.group.dismiss         the owner
chat.group.transfer        the owner, to another member
chat.group.admin           the owner, on another member
chat.group.update          the owner and admins (name, announcement, join policy)
chat.group.mute            the owner and admins; a member, or the whole group (empty
                           account); never the owner; an admin only by the owner
chat.group.apply           anyone: an open group is joined at once, an approval group
                           records the application and tells the owner and admins
chat.group.approve         the owner and admins, on a pending application
chat.group.applications    the owner and admins
=========================  ================================================================

Each change is answered first, then notified (``Group*Notify`` under the command) to
the group's online members; notifies have no inbox row (a client that was offline reads
the group again with ``chat.group.detail``).
"""

from __future__ import annotations

from data_plane.logic import names
from data_plane.logic.context import Request
from data_plane.logic.handlers.group_access import (
    group_id_of,
    hidden,
    join_policy_of,
    member_access,
    require_manager,
    require_owner,
    target_access,
)
from data_plane.logic.outbound_hooks import OutboundHooks
from data_plane.logic.pushes import Pusher, PushPart
from data_plane.logic.refusal import Refused
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.group_model import GroupChanges, JoinPolicy, Role
from data_plane.storage.messages.protocol import MessageStore
from data_plane.wire import Command, LogicPacket, Status, pb


class GroupAdminHandlers:
    """The group-administration commands (cirno extensions)."""

    def __init__(
        self, stores: TenantStores, pusher: Pusher, hooks: OutboundHooks | None = None
    ) -> None:
        self._stores = stores
        self._pusher = pusher
        self._hooks = hooks or OutboundHooks()

    async def _notify(self, request: Request, accounts: list[str], packet: LogicPacket) -> None:
        await self._pusher.push(request.tenant, request.channel_id, [PushPart(accounts, packet)])

    async def _notify_members(
        self, store: MessageStore, request: Request, group_id: str, packet: LogicPacket
    ) -> None:
        members = await store.members(request.tenant, group_id)
        await self._notify(request, [m.account for m in members], packet)

    async def _managers(self, store: MessageStore, request: Request, group_id: str) -> list[str]:
        group = await store.get_group(request.tenant, group_id)
        return [m.account for m in group.members if m.role == Role.ADMIN] + [group.owner]

    async def dismiss(self, request: Request) -> None:
        """Delete the group (owner); every member is notified."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupDismissReq)
        group_id = group_id_of(req.group_id)
        require_owner(await member_access(store, request, group_id), request, "dismiss the group")
        members = await store.dismiss_group(request.tenant, group_id)
        request.reply()
        notify = pb.GroupDismissNotify(group_id=group_id, by=request.account)
        await self._notify(
            request, members, LogicPacket.make_push(Command.CHAT_GROUP_DISMISS, notify)
        )
        await self._hooks.group_dismissed(request.tenant, group_id, request.account)

    async def transfer(self, request: Request) -> None:
        """Make another member the owner (owner); the old owner stays a plain member."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupTransferReq)
        group_id = group_id_of(req.group_id)
        account = names.account(req.account, "account")
        require_owner(await member_access(store, request, group_id), request, "transfer it")
        if account == request.account:
            raise Refused(Status.INVALID_PACKET_BODY, "you already own the group")
        await target_access(store, request, group_id, account)
        if not await store.transfer_group(request.tenant, group_id, account):
            raise Refused(Status.NOT_FOUND, f"{account!r} is not a member of the group")
        request.reply()
        notify = pb.GroupTransferNotify(
            group_id=group_id, owner=account, previous_owner=request.account
        )
        packet = LogicPacket.make_push(Command.CHAT_GROUP_TRANSFER, notify)
        await self._notify_members(store, request, group_id, packet)

    async def update(self, request: Request) -> None:
        """Change the name, announcement or join policy (owner or admin)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupUpdateReq)
        group_id = group_id_of(req.group_id)
        access = await member_access(store, request, group_id)
        require_manager(access, request, "update the group")
        changes = GroupChanges(
            name=req.name if req.HasField("name") else None,
            announcement=req.announcement if req.HasField("announcement") else None,
            join_policy=join_policy_of(req.join_policy) if req.HasField("join_policy") else None,
        )
        group = await store.update_group(request.tenant, group_id, changes)
        request.reply()
        notify = pb.GroupUpdateNotify(
            group_id=group_id,
            by=request.account,
            name=group.name,
            announcement=group.announcement,
            join_policy=int(group.join_policy),  # type: ignore[arg-type]
        )
        packet = LogicPacket.make_push(Command.CHAT_GROUP_UPDATE, notify)
        await self._notify(request, [m.account for m in group.members], packet)

    async def admin(self, request: Request) -> None:
        """Appoint or dismiss an admin (owner)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupAdminReq)
        group_id = group_id_of(req.group_id)
        account = names.account(req.account, "account")
        access = await member_access(store, request, group_id)
        require_owner(access, request, "appoint admins")
        if account == access.owner:
            raise Refused(Status.INVALID_PACKET_BODY, "the owner is not an admin")
        await target_access(store, request, group_id, account)
        role = Role.ADMIN if req.admin else Role.MEMBER
        await store.set_member(request.tenant, group_id, account, role=role)
        request.reply()
        notify = pb.GroupAdminNotify(
            group_id=group_id, account=account, admin=req.admin, by=request.account
        )
        packet = LogicPacket.make_push(Command.CHAT_GROUP_ADMIN, notify)
        await self._notify_members(store, request, group_id, packet)

    async def mute(self, request: Request) -> None:
        """Mute or unmute a member, or the whole group (owner or admin)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupMuteReq)
        group_id = group_id_of(req.group_id)
        access = await member_access(store, request, group_id)
        require_manager(access, request, "mute")
        if not req.account:
            await store.update_group(request.tenant, group_id, GroupChanges(muted=req.muted))
        else:
            account = names.account(req.account, "account")
            target = await target_access(store, request, group_id, account)
            if account == access.owner:
                raise Refused(Status.FORBIDDEN, "the owner cannot be muted")
            if target.role == Role.ADMIN and request.account != access.owner:
                raise Refused(Status.FORBIDDEN, "only the owner may mute an admin")
            await store.set_member(request.tenant, group_id, account, muted=req.muted)
        request.reply()
        notify = pb.GroupMuteNotify(
            group_id=group_id, account=req.account, muted=req.muted, by=request.account
        )
        packet = LogicPacket.make_push(Command.CHAT_GROUP_MUTE, notify)
        await self._notify_members(store, request, group_id, packet)

    async def apply(self, request: Request) -> None:
        """Join an open group at once, or apply to an approval group."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupApplyReq)
        group_id = group_id_of(req.group_id)
        access = await store.group_access(request.tenant, group_id, request.account)
        if access is None or (not access.member and access.join_policy == JoinPolicy.INVITE):
            raise hidden(group_id)
        if access.member:
            request.reply(body=pb.GroupApplyResp(joined=True))
            return
        if access.join_policy == JoinPolicy.OPEN:
            joined = await store.join_group(request.tenant, group_id, request.account)
            request.reply(body=pb.GroupApplyResp(joined=True))
            if joined:
                notify = pb.GroupJoinNotify(group_id=group_id, account=request.account)
                packet = LogicPacket.make_push(Command.CHAT_GROUP_JOIN, notify)
                await self._notify_members(store, request, group_id, packet)
                await self._hooks.members_changed(
                    request.tenant, group_id, joined=[request.account], left=[], by=request.account
                )
            return
        added = await store.add_application(request.tenant, group_id, request.account, req.message)
        request.reply(body=pb.GroupApplyResp(joined=False))
        if added:
            applied = pb.GroupApplyNotify(
                group_id=group_id, account=request.account, message=req.message
            )
            packet = LogicPacket.make_push(Command.CHAT_GROUP_APPLY, applied)
            await self._notify(request, await self._managers(store, request, group_id), packet)

    async def approve(self, request: Request) -> None:
        """Accept or refuse a pending application (owner or admin)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupApproveReq)
        group_id = group_id_of(req.group_id)
        account = names.account(req.account, "account")
        require_manager(
            await member_access(store, request, group_id), request, "approve applications"
        )
        if not await store.take_application(request.tenant, group_id, account):
            raise Refused(Status.NOT_FOUND, f"no pending application from {account!r}")
        joined = req.accept and await store.join_group(request.tenant, group_id, account)
        request.reply()
        decided = pb.GroupApproveNotify(
            group_id=group_id, account=account, accepted=req.accept, by=request.account
        )
        managers = await self._managers(store, request, group_id)
        packet = LogicPacket.make_push(Command.CHAT_GROUP_APPROVE, decided)
        await self._notify(request, [account, *managers], packet)
        if joined:
            notify = pb.GroupJoinNotify(group_id=group_id, account=account)
            packet = LogicPacket.make_push(Command.CHAT_GROUP_JOIN, notify)
            await self._notify_members(store, request, group_id, packet)
            await self._hooks.members_changed(
                request.tenant, group_id, joined=[account], left=[], by=request.account
            )

    async def applications(self, request: Request) -> None:
        """The pending applications, oldest first (owner or admin)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.GroupGetReq)
        group_id = group_id_of(req.group_id)
        require_manager(await member_access(store, request, group_id), request, "see applications")
        resp = pb.GroupApplicationsResp()
        for application in await store.applications(request.tenant, group_id):
            resp.applications.add(
                account=application.account,
                message=application.message,
                applied_at=application.applied_at,
            )
        request.reply(body=resp)
