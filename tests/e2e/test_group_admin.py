"""Group administration end to end (issue 14, item 6): every rule enforced with a clear
status, and the notifies reaching the members, over real processes (``cirno up``)."""

from __future__ import annotations

import pytest

from cirno.harness import Cluster, RawClient
from data_plane.wire import Command, Status, pb
from tests.e2e.test_chat import online, unique
from tests.e2e.test_group import create_group, group_send

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def answer(
    client: RawClient, command: str, body: object, dest: str = ""
) -> tuple[int, str, bytes]:
    """Status, error text (empty on success) and body of the answer to one request."""
    reply = await client.response(client.request(command, body, dest=dest))
    text = reply.parse_body(pb.ErrorResp).message if reply.status != Status.SUCCESS else ""
    return reply.status, text, reply.body


async def status(client: RawClient, command: str, body: object, dest: str = "") -> int:
    return (await answer(client, command, body, dest))[0]


async def detail(client: RawClient, group_id: str) -> pb.GroupGetResp:
    status_, text, body = await answer(
        client, Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id=group_id)
    )
    assert status_ == Status.SUCCESS, text
    reply = pb.GroupGetResp()
    reply.ParseFromString(body)
    return reply


async def test_only_the_owner_dismisses_transfers_and_appoints(cluster: Cluster) -> None:
    names = [unique("own"), unique("adm"), unique("mem")]
    owner, admin, member = [await online(cluster, name) for name in names]
    group_id = await create_group(owner, names[1:])
    for client in (admin, member):
        await client.push(Command.CHAT_GROUP_CREATE)

    appoint = pb.GroupAdminReq(group_id=group_id, account=names[1], admin=True)
    assert await status(member, Command.CHAT_GROUP_ADMIN, appoint) == Status.FORBIDDEN
    assert await status(owner, Command.CHAT_GROUP_ADMIN, appoint) == Status.SUCCESS
    for client in (admin, member):
        notify = (await client.push(Command.CHAT_GROUP_ADMIN)).parse_body(pb.GroupAdminNotify)
        assert (notify.account, notify.admin, notify.by) == (names[1], True, names[0])
    assert {m.account: m.admin for m in (await detail(member, group_id)).members} == {
        names[0]: False,
        names[1]: True,
        names[2]: False,
    }

    dismiss = pb.GroupDismissReq(group_id=group_id)
    transfer = pb.GroupTransferReq(group_id=group_id, account=names[2])
    status_, text, _ = await answer(admin, Command.CHAT_GROUP_DISMISS, dismiss)
    assert (status_, text) == (Status.FORBIDDEN, "only the owner may dismiss the group")
    assert await status(admin, Command.CHAT_GROUP_TRANSFER, transfer) == Status.FORBIDDEN
    stranger = pb.GroupTransferReq(group_id=group_id, account=unique("nobody"))
    assert await status(owner, Command.CHAT_GROUP_TRANSFER, stranger) == Status.NOT_FOUND

    assert await status(owner, Command.CHAT_GROUP_TRANSFER, transfer) == Status.SUCCESS
    for client in (admin, member):
        moved = (await client.push(Command.CHAT_GROUP_TRANSFER)).parse_body(pb.GroupTransferNotify)
        assert (moved.owner, moved.previous_owner) == (names[2], names[0])
    assert (await detail(owner, group_id)).owner == names[2]
    # The old owner is a plain member now: it may quit, and may no longer dismiss.
    assert await status(owner, Command.CHAT_GROUP_DISMISS, dismiss) == Status.FORBIDDEN

    assert await status(member, Command.CHAT_GROUP_DISMISS, dismiss) == Status.SUCCESS
    for client in (owner, admin):
        gone = (await client.push(Command.CHAT_GROUP_DISMISS)).parse_body(pb.GroupDismissNotify)
        assert (gone.group_id, gone.by) == (group_id, names[2])
    await refuses_everything(member, group_id)
    for client in (owner, admin, member):
        client.close()


async def refuses_everything(client: RawClient, group_id: str) -> None:
    """A dismissed group answers every command as a group that never existed."""
    missing = f"group {group_id!r} does not exist or you are not a member of it"
    get = pb.GroupGetReq(group_id=group_id)
    requests: list[tuple[str, object]] = [
        (Command.CHAT_GROUP_DETAIL, get),
        (Command.CHAT_GROUP_MEMBERS, get),
        (Command.CHAT_GROUP_APPLICATIONS, get),
        (Command.CHAT_GROUP_JOIN, pb.GroupJoinReq(group_id=group_id)),
        (Command.CHAT_GROUP_QUIT, pb.GroupQuitReq(group_id=group_id)),
        (Command.CHAT_GROUP_APPLY, pb.GroupApplyReq(group_id=group_id)),
        (Command.CHAT_GROUP_DISMISS, pb.GroupDismissReq(group_id=group_id)),
        (Command.CHAT_GROUP_UPDATE, pb.GroupUpdateReq(group_id=group_id, name="x")),
        (Command.CHAT_GROUP_MUTE, pb.GroupMuteReq(group_id=group_id, muted=True)),
    ]
    for command, body in requests:
        assert (await answer(client, command, body))[:2] == (Status.NOT_FOUND, missing), command
    assert (await group_send(client, group_id, "anyone?"))[0] == Status.NOT_FOUND


async def test_mutes_refuse_talks_but_not_the_managers(cluster: Cluster) -> None:
    names = [unique("own"), unique("adm"), unique("mem"), unique("oth")]
    owner, admin, member, other = [await online(cluster, name) for name in names]
    group_id = await create_group(owner, names[1:])
    appoint = pb.GroupAdminReq(group_id=group_id, account=names[1], admin=True)
    assert await status(owner, Command.CHAT_GROUP_ADMIN, appoint) == Status.SUCCESS

    mute_member = pb.GroupMuteReq(group_id=group_id, account=names[2], muted=True)
    assert await status(other, Command.CHAT_GROUP_MUTE, mute_member) == Status.FORBIDDEN
    mute_owner = pb.GroupMuteReq(group_id=group_id, account=names[0], muted=True)
    assert await status(admin, Command.CHAT_GROUP_MUTE, mute_owner) == Status.FORBIDDEN
    assert await status(admin, Command.CHAT_GROUP_MUTE, mute_member) == Status.SUCCESS
    for client in (member, other):
        notify = (await client.push(Command.CHAT_GROUP_MUTE)).parse_body(pb.GroupMuteNotify)
        assert (notify.account, notify.muted, notify.by) == (names[2], True, names[1])
    status_, text, _ = await answer(
        member, Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body="hi"), dest=group_id
    )
    assert (status_, text) == (Status.FORBIDDEN, "you are muted in this group")
    assert (await group_send(other, group_id, "I still talk"))[0] == Status.SUCCESS

    mute_all = pb.GroupMuteReq(group_id=group_id, muted=True)
    assert await status(admin, Command.CHAT_GROUP_MUTE, mute_all) == Status.SUCCESS
    whole = (await other.push(Command.CHAT_GROUP_MUTE)).parse_body(pb.GroupMuteNotify)
    assert (whole.account, whole.muted) == ("", True)
    assert (await detail(other, group_id)).muted
    status_, text, _ = await answer(
        other, Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body="hi"), dest=group_id
    )
    assert (status_, text) == (
        Status.FORBIDDEN,
        "the group is muted: only the owner and admins talk",
    )
    for manager in (owner, admin):
        assert (await group_send(manager, group_id, "managers talk"))[0] == Status.SUCCESS

    unmute_all = pb.GroupMuteReq(group_id=group_id, muted=False)
    unmute_member = pb.GroupMuteReq(group_id=group_id, account=names[2], muted=False)
    assert await status(owner, Command.CHAT_GROUP_MUTE, unmute_all) == Status.SUCCESS
    assert await status(owner, Command.CHAT_GROUP_MUTE, unmute_member) == Status.SUCCESS
    assert (await group_send(member, group_id, "free again"))[0] == Status.SUCCESS
    for client in (owner, admin, member, other):
        client.close()


async def test_join_policies_invite_open_and_approval(cluster: Cluster) -> None:
    names = [unique("own"), unique("mem"), unique("out"), unique("app"), unique("rej")]
    owner, member, outsider, applicant, rejected = [await online(cluster, n) for n in names]
    group_id = await create_group(owner, [names[1]])  # invite-only: the default
    missing = f"group {group_id!r} does not exist or you are not a member of it"

    join_self = pb.GroupJoinReq(group_id=group_id)
    assert (await answer(outsider, Command.CHAT_GROUP_JOIN, join_self))[:2] == (
        Status.NOT_FOUND,
        missing,
    )
    apply = pb.GroupApplyReq(group_id=group_id, message="please")
    assert await status(outsider, Command.CHAT_GROUP_APPLY, apply) == Status.NOT_FOUND
    invite = pb.GroupJoinReq(group_id=group_id, account=names[2])
    assert await status(member, Command.CHAT_GROUP_JOIN, invite) == Status.FORBIDDEN

    # Open: anyone joins itself.
    to_open = pb.GroupUpdateReq(group_id=group_id, join_policy=pb.JoinOpen)
    assert await status(member, Command.CHAT_GROUP_UPDATE, to_open) == Status.FORBIDDEN
    assert await status(owner, Command.CHAT_GROUP_UPDATE, to_open) == Status.SUCCESS
    updated = (await member.push(Command.CHAT_GROUP_UPDATE)).parse_body(pb.GroupUpdateNotify)
    assert (updated.join_policy, updated.by) == (pb.JoinOpen, names[0])
    assert await status(outsider, Command.CHAT_GROUP_JOIN, join_self) == Status.SUCCESS
    joined = (await member.push(Command.CHAT_GROUP_JOIN)).parse_body(pb.GroupJoinNotify)
    assert joined.account == names[2]

    # Approval: join is refused with the way in; apply waits for the owner or an admin.
    to_approval = pb.GroupUpdateReq(group_id=group_id, join_policy=pb.JoinApproval)
    assert await status(owner, Command.CHAT_GROUP_UPDATE, to_approval) == Status.SUCCESS
    assert await status(applicant, Command.CHAT_GROUP_JOIN, join_self) == Status.FORBIDDEN
    status_, _, body = await answer(applicant, Command.CHAT_GROUP_APPLY, apply)
    assert status_ == Status.SUCCESS
    resp = pb.GroupApplyResp()
    resp.ParseFromString(body)
    assert not resp.joined
    asked = (await owner.push(Command.CHAT_GROUP_APPLY)).parse_body(pb.GroupApplyNotify)
    assert (asked.account, asked.message) == (names[3], "please")
    assert await status(rejected, Command.CHAT_GROUP_APPLY, apply) == Status.SUCCESS
    get = pb.GroupGetReq(group_id=group_id)
    assert await status(member, Command.CHAT_GROUP_APPLICATIONS, get) == Status.FORBIDDEN
    status_, _, body = await answer(owner, Command.CHAT_GROUP_APPLICATIONS, get)
    pending = pb.GroupApplicationsResp()
    pending.ParseFromString(body)
    assert [a.account for a in pending.applications] == [names[3], names[4]]

    accept = pb.GroupApproveReq(group_id=group_id, account=names[3], accept=True)
    assert await status(member, Command.CHAT_GROUP_APPROVE, accept) == Status.FORBIDDEN
    assert await status(owner, Command.CHAT_GROUP_APPROVE, accept) == Status.SUCCESS
    decided = (await applicant.push(Command.CHAT_GROUP_APPROVE)).parse_body(pb.GroupApproveNotify)
    assert (decided.accepted, decided.by) == (True, names[0])
    assert names[3] in {m.account for m in (await detail(applicant, group_id)).members}
    refuse = pb.GroupApproveReq(group_id=group_id, account=names[4], accept=False)
    assert await status(owner, Command.CHAT_GROUP_APPROVE, refuse) == Status.SUCCESS
    no = (await rejected.push(Command.CHAT_GROUP_APPROVE)).parse_body(pb.GroupApproveNotify)
    assert not no.accepted
    assert await status(rejected, Command.CHAT_GROUP_DETAIL, get) == Status.NOT_FOUND
    assert await status(owner, Command.CHAT_GROUP_APPROVE, refuse) == Status.NOT_FOUND
    for client in (owner, member, outsider, applicant, rejected):
        client.close()


async def test_update_name_and_announcement_reach_members(cluster: Cluster) -> None:
    names = [unique("own"), unique("mem")]
    owner, member = [await online(cluster, name) for name in names]
    group_id = await create_group(owner, [names[1]], name="before")
    update = pb.GroupUpdateReq(group_id=group_id, name="after", announcement="read me")
    assert await status(member, Command.CHAT_GROUP_UPDATE, update) == Status.FORBIDDEN
    assert await status(owner, Command.CHAT_GROUP_UPDATE, update) == Status.SUCCESS
    notify = (await member.push(Command.CHAT_GROUP_UPDATE)).parse_body(pb.GroupUpdateNotify)
    assert (notify.name, notify.announcement, notify.join_policy) == (
        "after",
        "read me",
        pb.JoinInvite,
    )
    seen = await detail(member, group_id)
    assert (seen.name, seen.announcement, seen.join_policy) == ("after", "read me", pb.JoinInvite)
    too_long = pb.GroupUpdateReq(group_id=group_id, announcement="x" * 1025)
    assert await status(owner, Command.CHAT_GROUP_UPDATE, too_long) == Status.INVALID_PACKET_BODY
    nameless = pb.GroupUpdateReq(group_id=group_id, name="")
    assert await status(owner, Command.CHAT_GROUP_UPDATE, nameless) == Status.INVALID_PACKET_BODY
    owner.close()
    member.close()
