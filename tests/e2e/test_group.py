"""Group chat end to end: create, membership, detail, talk with a per-group order."""

from __future__ import annotations

import anyio
import pytest

from cirno.harness import Cluster, RawClient
from data_plane.wire import Command, Status, pb
from tests.e2e.test_chat import index, online, send, unique

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def create_group(
    client: RawClient, members: list[str], name: str = "g", policy: int = pb.JoinInvite
) -> str:
    seq = client.request(
        Command.CHAT_GROUP_CREATE,
        pb.GroupCreateReq(name=name, owner="ignored-owner", members=members, join_policy=policy),  # type: ignore[arg-type]
    )
    answer = await client.response(seq, timeout=30)
    assert answer.status == Status.SUCCESS, answer
    return answer.parse_body(pb.GroupCreateResp).group_id


async def group_send(client: RawClient, group_id: str, body: str) -> tuple[int, pb.MessageResp]:
    seq = client.request(Command.CHAT_GROUP_TALK, pb.MessageReq(type=1, body=body), dest=group_id)
    answer = await client.response(seq, timeout=30)
    return answer.status, (
        answer.parse_body(pb.MessageResp) if answer.status == Status.SUCCESS else pb.MessageResp()
    )


async def status_of(client: RawClient, command: str, body: object, dest: str = "") -> int:
    seq = client.request(command, body, dest=dest)
    return (await client.response(seq)).status


async def test_group_message_reaches_online_and_offline_members(cluster: Cluster) -> None:
    owner_name, a, b, c = unique("own"), unique("a"), unique("b"), unique("c")
    owner = await online(cluster, owner_name)
    member_a = await online(cluster, a)
    member_b = await online(cluster, b, tcp=True)
    group_id = await create_group(owner, [a, b, c])
    for member in (member_a, member_b):
        notify = (await member.push(Command.CHAT_GROUP_CREATE)).parse_body(pb.GroupCreateNotify)
        assert notify.group_id == group_id
        assert set(notify.members) == {owner_name, a, b, c}

    seq = owner.request(Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id=group_id))
    detail = (await owner.response(seq)).parse_body(pb.GroupGetResp)
    assert detail.owner == owner_name  # the caller, never the body's owner
    assert {m.account for m in detail.members} == {owner_name, a, b, c}

    status, resp = await group_send(owner, group_id, "hello group")
    assert status == Status.SUCCESS
    for member in (member_a, member_b):
        push = (await member.push(Command.CHAT_GROUP_TALK)).parse_body(pb.MessagePush)
        assert (push.messageId, push.body, push.type) == (resp.messageId, "hello group", 1)
        assert (push.sender, push.group, push.seq) == (owner_name, group_id, 1)
    assert resp.seq == 1

    offline = await online(cluster, c)
    page = await index(offline, 0)
    entries = [e for e in page.indexes if e.group == group_id]
    assert [e.message_id for e in entries] == [resp.messageId]
    assert entries[0].accountB == owner_name
    for client in (owner, member_a, member_b, offline):
        client.close()


async def test_outsiders_are_refused(cluster: Cluster) -> None:
    owner_name, member_name, outsider_name = unique("own"), unique("m"), unique("out")
    owner = await online(cluster, owner_name)
    member = await online(cluster, member_name)
    outsider = await online(cluster, outsider_name)
    group_id = await create_group(owner, [member_name])

    # To an outsider the group is as missing as one that never existed (NotFound).
    assert (await group_send(outsider, group_id, "let me in"))[0] == Status.NOT_FOUND
    get = pb.GroupGetReq(group_id=group_id)
    assert await status_of(outsider, Command.CHAT_GROUP_DETAIL, get) == Status.NOT_FOUND
    assert await status_of(outsider, Command.CHAT_GROUP_MEMBERS, get) == Status.NOT_FOUND
    join_other = pb.GroupJoinReq(account=unique("x"), group_id=group_id)
    assert await status_of(outsider, Command.CHAT_GROUP_JOIN, join_other) == Status.NOT_FOUND
    quit_other = pb.GroupQuitReq(account=member_name, group_id=group_id)
    assert await status_of(outsider, Command.CHAT_GROUP_QUIT, quit_other) == Status.NOT_FOUND
    # Members are told the rule they break (Forbidden).
    quit_peer = pb.GroupQuitReq(account=owner_name, group_id=group_id)
    assert await status_of(member, Command.CHAT_GROUP_QUIT, quit_peer) == Status.FORBIDDEN
    add_other = pb.GroupJoinReq(account=unique("y"), group_id=group_id)
    assert await status_of(member, Command.CHAT_GROUP_JOIN, add_other) == Status.FORBIDDEN
    quit_owner = pb.GroupQuitReq(account=owner_name, group_id=group_id)
    assert await status_of(owner, Command.CHAT_GROUP_QUIT, quit_owner) == Status.FORBIDDEN
    unknown = pb.GroupGetReq(group_id="no-such-group")
    assert await status_of(member, Command.CHAT_GROUP_DETAIL, unknown) == Status.NOT_FOUND
    assert (await group_send(member, "no-such-group", "x"))[0] == Status.NOT_FOUND
    assert await status_of(member, Command.CHAT_GROUP_TALK, pb.MessageReq()) == (
        Status.NO_DESTINATION
    )
    for client in (owner, member, outsider):
        client.close()


async def test_join_and_quit_change_members_and_notify(cluster: Cluster) -> None:
    owner_name, joiner_name, added_name = unique("own"), unique("j"), unique("add")
    owner = await online(cluster, owner_name)
    joiner = await online(cluster, joiner_name)
    group_id = await create_group(owner, [], policy=pb.JoinOpen)

    join = pb.GroupJoinReq(account=joiner_name, group_id=group_id)
    assert await status_of(joiner, Command.CHAT_GROUP_JOIN, join) == Status.SUCCESS
    notify = (await owner.push(Command.CHAT_GROUP_JOIN)).parse_body(pb.GroupJoinNotify)
    assert (notify.group_id, notify.account) == (group_id, joiner_name)

    add = pb.GroupJoinReq(account=added_name, group_id=group_id)
    assert await status_of(owner, Command.CHAT_GROUP_JOIN, add) == Status.SUCCESS
    await joiner.push(Command.CHAT_GROUP_JOIN)

    seq = joiner.request(Command.CHAT_GROUP_MEMBERS, pb.GroupGetReq(group_id=group_id))
    members = (await joiner.response(seq)).parse_body(pb.GroupMembersResp).members
    assert {m.account for m in members} == {owner_name, joiner_name, added_name}

    leave = pb.GroupQuitReq(account=joiner_name, group_id=group_id)
    assert await status_of(joiner, Command.CHAT_GROUP_QUIT, leave) == Status.SUCCESS
    quit_notify = (await owner.push(Command.CHAT_GROUP_QUIT)).parse_body(pb.GroupQuitNotify)
    assert (quit_notify.group_id, quit_notify.account) == (group_id, joiner_name)
    seq = owner.request(Command.CHAT_GROUP_MEMBERS, pb.GroupGetReq(group_id=group_id))
    members = (await owner.response(seq)).parse_body(pb.GroupMembersResp).members
    assert {m.account for m in members} == {owner_name, added_name}
    # The one who left no longer receives the group's messages.
    assert (await group_send(owner, group_id, "after you left"))[0] == Status.SUCCESS
    with anyio.move_on_after(0.5):
        stray = await joiner.push(Command.CHAT_GROUP_TALK)
        pytest.fail(f"a member who quit got {stray}")
    owner.close()
    joiner.close()


async def test_concurrent_senders_one_order_for_everyone(cluster: Cluster) -> None:
    names = [unique("o"), unique("p"), unique("q"), unique("w")]
    clients = [await online(cluster, name, tcp=i % 2 == 1) for i, name in enumerate(names)]
    group_id = await create_group(clients[0], names[1:])
    for client in clients[1:]:
        await client.push(Command.CHAT_GROUP_CREATE)
    per_sender = 20

    async def burst(client: RawClient, tag: str) -> None:
        for i in range(per_sender):
            status, _ = await group_send(client, group_id, f"{tag}-{i}")
            assert status == Status.SUCCESS

    async with anyio.create_task_group() as tg:
        tg.start_soon(burst, clients[0], "A")
        tg.start_soon(burst, clients[1], "B")

    async def view(client: RawClient, expected: int) -> list[tuple[int, str]]:
        seen: list[tuple[int, str]] = []
        while len(seen) < expected:
            push = (await client.push(Command.CHAT_GROUP_TALK)).parse_body(pb.MessagePush)
            seen.append((push.seq, push.body))
        return seen

    # Watchers see all 40; each sender sees the other's 20 (its own come as responses).
    watchers = [await view(client, 2 * per_sender) for client in clients[2:]]
    assert watchers[0] == watchers[1]
    assert [seq for seq, _ in watchers[0]] == list(range(1, 2 * per_sender + 1))
    order = dict(watchers[0])
    for sender_index, other_tag in ((0, "B"), (1, "A")):
        seen = await view(clients[sender_index], per_sender)
        assert all(order[seq] == body for seq, body in seen)
        assert all(body.startswith(other_tag) for _, body in seen)
    # Each sender's own messages keep their order in the group sequence.
    for tag in ("A", "B"):
        mine = [body for _, body in sorted(watchers[0]) if body.startswith(tag)]
        assert mine == [f"{tag}-{i}" for i in range(per_sender)]
    for client in clients:
        client.close()


async def test_thousand_member_group_is_stored_and_delivered(cluster: Cluster) -> None:
    owner_name = unique("big")
    members = [f"{owner_name}-m{i:04d}" for i in range(999)]
    owner = await online(cluster, owner_name)
    onliners = [await online(cluster, name) for name in members[:20]]
    group_id = await create_group(owner, members)
    status, resp = await group_send(owner, group_id, "to a thousand")
    assert status == Status.SUCCESS
    for client in onliners:
        push = (await client.push(Command.CHAT_GROUP_TALK, timeout=15)).parse_body(pb.MessagePush)
        assert push.messageId == resp.messageId
        client.close()
    for name in (members[500], members[-1]):
        late = await online(cluster, name)
        page = await index(late, 0)
        assert [e.message_id for e in page.indexes if e.group == group_id] == [resp.messageId]
        late.close()
    owner.close()


async def test_five_thousand_member_group(cluster: Cluster) -> None:
    owner_name = unique("huge")
    members = [f"h{i:04d}" for i in range(4999)]
    owner = await online(cluster, owner_name)
    watchers = [await online(cluster, name) for name in (members[0], members[2500])]
    group_id = await create_group(owner, members, name="five thousand")
    listed: list[str] = []
    while True:  # members come in pages of at most 1,000
        seq = owner.request(
            Command.CHAT_GROUP_MEMBERS, pb.GroupGetReq(group_id=group_id, offset=len(listed))
        )
        page = (await owner.response(seq, timeout=30)).parse_body(pb.GroupMembersResp)
        assert len(page.members) <= 1000 and page.member_count == 5000
        listed.extend(m.account for m in page.members)
        if not page.has_more:
            break
    assert sorted(listed) == sorted([owner_name, *members])
    seq = owner.request(Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id=group_id))
    detail = (await owner.response(seq, timeout=30)).parse_body(pb.GroupGetResp)
    assert (detail.member_count, len(detail.members)) == (5000, 1000)
    status, resp = await group_send(owner, group_id, "to five thousand")
    assert status == Status.SUCCESS and resp.seq == 1
    for client in watchers:
        push = (await client.push(Command.CHAT_GROUP_TALK, timeout=30)).parse_body(pb.MessagePush)
        assert (push.messageId, push.seq) == (resp.messageId, 1)
        client.close()
    late = await online(cluster, members[-1])
    pulled = await index(late, 0)
    assert [e.message_id for e in pulled.indexes if e.group == group_id] == [resp.messageId]
    late.close()
    owner.close()


async def test_large_group_and_direct_messages_to_a_member_interleave_without_gaps(
    cluster: Cluster,
) -> None:
    # 50 members: large enough for the store to write the group's rows in bulk whenever
    # a batch allows it, while the direct messages to one member force row-by-row.
    owner_name, other_name, friend_name = unique("lg"), unique("lh"), unique("lf")
    members = [other_name, *[f"{owner_name}-m{i:02d}" for i in range(48)]]
    watcher_name = members[7]
    owner = await online(cluster, owner_name)
    other = await online(cluster, other_name, tcp=True)
    friend = await online(cluster, friend_name)
    group_id = await create_group(owner, members)
    per_sender = 15

    async def group_burst(client: RawClient, tag: str) -> None:
        for i in range(per_sender):
            status, _ = await group_send(client, group_id, f"{tag}-{i}")
            assert status == Status.SUCCESS

    async def direct_burst() -> None:
        for i in range(per_sender):
            await send(friend, watcher_name, f"D-{i}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(group_burst, owner, "A")
        tg.start_soon(group_burst, other, "B")
        tg.start_soon(direct_burst)

    watcher = await online(cluster, watcher_name)
    entries: list[pb.MessageIndex] = []
    after = 0
    while True:
        page = await index(watcher, after)
        if not page.indexes:
            break
        entries.extend(page.indexes)
        after = page.indexes[-1].message_id
    assert [e.seq for e in entries] == list(range(1, 3 * per_sender + 1))
    seq = watcher.request(
        Command.CHAT_OFFLINE_CONTENT,
        pb.MessageContentReq(message_ids=[e.message_id for e in entries]),
    )
    contents = (await watcher.response(seq)).parse_body(pb.MessageContentResp).contents
    bodies = [c.body for c in contents]
    for tag in ("A", "B", "D"):
        assert [b for b in bodies if b.startswith(tag)] == [f"{tag}-{i}" for i in range(per_sender)]
    for client in (owner, other, friend, watcher):
        client.close()


async def test_kim_web_sdk_group_flow_under_the_invite_only_default(cluster: Cluster) -> None:
    # kim_web_sdk's sdk.test.ts 'group': create with a member, add a third, quit them.
    owner_name, second, third = unique("t1"), unique("t2"), unique("t3")
    owner = await online(cluster, owner_name)
    seq = owner.request(
        Command.CHAT_GROUP_CREATE,
        pb.GroupCreateReq(name="group_sdk", introduction="test", members=[second]),
    )
    answer = await owner.response(seq)
    assert answer.status == Status.SUCCESS
    group_id = answer.parse_body(pb.GroupCreateResp).group_id

    async def member_count() -> int:
        seq = owner.request(Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id=group_id))
        detail = await owner.response(seq)
        assert detail.status == Status.SUCCESS
        return len(detail.parse_body(pb.GroupGetResp).members)

    assert await member_count() == 2
    join = pb.GroupJoinReq(group_id=group_id, account=third)
    assert await status_of(owner, Command.CHAT_GROUP_JOIN, join) == Status.SUCCESS
    assert await member_count() == 3
    leave = pb.GroupQuitReq(group_id=group_id, account=third)
    assert await status_of(owner, Command.CHAT_GROUP_QUIT, leave) == Status.SUCCESS
    assert await member_count() == 2
    assert (await group_send(owner, group_id, "still here"))[0] == Status.SUCCESS
    owner.close()
