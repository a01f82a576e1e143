"""Abuse rows 4, 8 and 9 of issue 12, over real processes (``cirno up``, default limits).

Each test also asserts that the logic node, which stores and refuses these requests,
grows by less than ``GROWTH_BOUND`` while it runs (VmRSS).

- Row 4: a user of the tenant cannot join someone else's invite-only group, list its
  members or receive its messages, and cannot tell a private group from a missing one
  (same status, same text, on every command).
- Row 8: a message whose push would exceed the client packet limit is refused with
  TooLarge (413) and nothing is stored; one whose push just fits is delivered.
- Row 9: a ``dest`` or group member that is not an account name is refused
  (NoDestination / InvalidPacketBody) and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from cirno.harness import Cluster, RawClient, run_cluster
from data_plane.logic.handlers.chat import message_push
from data_plane.logic.push_size import push_size
from data_plane.wire import DEFAULT_MAX_PACKET_SIZE, Command, Status, pb
from tests.abuse.conftest import MIB, role_pid, rss
from tests.e2e.conftest import SECRET, TENANT
from tests.e2e.test_chat import index, online, unique
from tests.e2e.test_group import create_group, group_send
from tests.e2e.test_group_admin import answer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

LIMIT = DEFAULT_MAX_PACKET_SIZE
GROWTH_BOUND = 32 * MIB
"""What the logic node may grow by during one test: a few 64 KiB messages, a few groups."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``cirno up`` on its default limits, with the tenant of ``tests.e2e``'s helpers."""
    with run_cluster(tmp_path_factory.mktemp("abuse-groups")) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


@pytest.fixture(autouse=True)
def logic_memory_bounded(cluster: Cluster) -> Iterator[None]:
    """The logic node grows by less than ``GROWTH_BOUND`` during the test."""
    logic = role_pid(cluster, "logic")
    before = rss(logic)
    yield
    grown = rss(logic) - before
    assert grown < GROWTH_BOUND, f"the logic node grew by {grown / MIB:.1f} MiB"


async def no_push(client: RawClient, command: str) -> None:
    """Assert that no ``command`` push arrives within half a second."""
    with anyio.move_on_after(0.5):
        stray = await client.push(command)
        pytest.fail(f"unexpected push {stray}")


async def test_row4_a_private_group_looks_missing_to_outsiders(cluster: Cluster) -> None:
    owner_name, member_name, intruder_name = unique("own"), unique("mem"), unique("evil")
    owner = await online(cluster, owner_name)
    member = await online(cluster, member_name)
    intruder = await online(cluster, intruder_name)
    group_id = await create_group(owner, [member_name])
    assert len(group_id) >= 16 and not group_id.isdigit()  # random, not a snowflake
    missing_id = group_id[:-4] + ("AAAA" if not group_id.endswith("AAAA") else "BBBB")

    def requests(gid: str) -> list[tuple[str, object, str]]:
        get = pb.GroupGetReq(group_id=gid)
        return [
            (Command.CHAT_GROUP_JOIN, pb.GroupJoinReq(group_id=gid), ""),
            (Command.CHAT_GROUP_JOIN, pb.GroupJoinReq(group_id=gid, account=intruder_name), ""),
            (Command.CHAT_GROUP_APPLY, pb.GroupApplyReq(group_id=gid), ""),
            (Command.CHAT_GROUP_DETAIL, get, ""),
            (Command.CHAT_GROUP_MEMBERS, get, ""),
            (Command.CHAT_GROUP_QUIT, pb.GroupQuitReq(group_id=gid), ""),
            (Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body="hi"), gid),
            (Command.CHAT_GROUP_MUTE, pb.GroupMuteReq(group_id=gid, muted=True), ""),
            (Command.CHAT_GROUP_DISMISS, pb.GroupDismissReq(group_id=gid), ""),
        ]

    for (command, private, dest), (_, absent, dest_absent) in zip(
        requests(group_id), requests(missing_id), strict=True
    ):
        status_private, text_private, _ = await answer(intruder, command, private, dest)
        status_absent, text_absent, _ = await answer(intruder, command, absent, dest_absent)
        assert status_private == status_absent == Status.NOT_FOUND, command
        # The same words but for the id the caller sent itself.
        assert text_private.replace(group_id, "ID") == text_absent.replace(missing_id, "ID")

    status_, resp = await group_send(owner, group_id, "members only")
    assert status_ == Status.SUCCESS
    push = (await member.push(Command.CHAT_GROUP_TALK)).parse_body(pb.MessagePush)
    assert push.messageId == resp.messageId
    await no_push(intruder, Command.CHAT_GROUP_TALK)
    assert not [e for e in (await index(intruder, 0)).indexes if e.group == group_id]
    for client in (owner, member, intruder):
        client.close()


def widest_push(command: str, sender: str, dest: str, body: str, group: str) -> int:
    """The push bound the server computes (group pushes carry no inbox sequence)."""
    req = pb.MessageReq(type=1, body=body)
    return push_size(
        lambda result, seq: message_push(
            command, req, sender, dest, result, group, 0 if group else seq
        )
    )


def body_for(command: str, sender: str, dest: str, group: str, size: int) -> str:
    """The longest ASCII body whose push bound is at most ``size`` bytes."""
    length = size - widest_push(command, sender, dest, "", group)
    while widest_push(command, sender, dest, "x" * length, group) > size:
        length -= 1
    return "x" * length


async def test_row8_an_oversize_push_is_refused_and_a_fitting_one_delivered(
    cluster: Cluster,
) -> None:
    sender_name = unique("long").ljust(64, "n")  # the longest account name
    receiver_name = unique("rcv")
    sender = await online(cluster, sender_name)
    receiver = await online(cluster, receiver_name, tcp=True)
    talk = Command.CHAT_USER_TALK

    over = body_for(talk, sender_name, receiver_name, "", LIMIT) + "x"
    status_, text, _ = await answer(
        sender, talk, pb.MessageReq(type=1, body=over, client_msg_id="big"), receiver_name
    )
    assert status_ == Status.TOO_LARGE and "packet limit" in text
    await no_push(receiver, talk)
    assert (await index(receiver, 0)).indexes == [] and (await index(sender, 0)).indexes == []

    fits = body_for(talk, sender_name, receiver_name, "", LIMIT)
    status_, _, _ = await answer(sender, talk, pb.MessageReq(type=1, body=fits), receiver_name)
    assert status_ == Status.SUCCESS
    push = (await receiver.push(talk, timeout=10)).parse_body(pb.MessagePush)
    assert push.body == fits and push.sender == sender_name

    group_id = await create_group(sender, [receiver_name])
    await receiver.push(Command.CHAT_GROUP_CREATE)
    group_talk = Command.CHAT_GROUP_TALK
    over = body_for(group_talk, sender_name, group_id, group_id, LIMIT) + "x"
    assert (await group_send(sender, group_id, over))[0] == Status.TOO_LARGE
    await no_push(receiver, group_talk)
    assert not [e for e in (await index(receiver, 0)).indexes if e.group == group_id]
    fits = body_for(group_talk, sender_name, group_id, group_id, LIMIT)
    assert (await group_send(sender, group_id, fits))[0] == Status.SUCCESS
    push = (await receiver.push(group_talk, timeout=10)).parse_body(pb.MessagePush)
    assert push.body == fits
    sender.close()
    receiver.close()


@pytest.mark.parametrize("dest", ["a,b{c}", "bob\x00", "b" * 65, "{x}", "tab\there"])
async def test_row9_a_dest_that_is_no_account_is_refused(cluster: Cluster, dest: str) -> None:
    sender = await online(cluster, unique("snd"))
    status_, text, _ = await answer(
        sender, Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="lost"), dest
    )
    assert status_ == Status.NO_DESTINATION and "is not an account" in text
    assert (await index(sender, 0)).indexes == []  # not even the sender's own row
    sender.close()


async def test_row9_members_that_are_no_accounts_are_refused(cluster: Cluster) -> None:
    owner_name, friend_name = unique("own"), unique("fr")
    owner = await online(cluster, owner_name)
    friend = await online(cluster, friend_name)
    create = pb.GroupCreateReq(name="g", members=[friend_name, "a,b"])
    status_, text, _ = await answer(owner, Command.CHAT_GROUP_CREATE, create)
    assert status_ == Status.INVALID_PACKET_BODY and "'a,b'" in text
    await no_push(friend, Command.CHAT_GROUP_CREATE)  # no group was made

    group_id = await create_group(owner, [friend_name])
    for bad in ("a,b", "bob\x00", "x" * 65):
        add = pb.GroupJoinReq(group_id=group_id, account=bad)
        assert (await answer(owner, Command.CHAT_GROUP_JOIN, add))[0] == (
            Status.INVALID_PACKET_BODY
        )
    get = pb.GroupGetReq(group_id=group_id)
    reply = await owner.response(owner.request(Command.CHAT_GROUP_MEMBERS, get))
    members = reply.parse_body(pb.GroupMembersResp).members
    assert {m.account for m in members} == {owner_name, friend_name}
    owner.close()
    friend.close()
