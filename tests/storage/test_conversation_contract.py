# ruff: noqa: F811  (the fixtures imported from the message contract are parameters)
"""Contract suite of the conversation methods (``ConversationStore``): memory, SQLite
and MySQL behave the same.

Uses the message contract's fixtures (a store per backend, a tenant per test).
"""

from __future__ import annotations

import anyio
import pytest

from data_plane.storage.ids import wall_clock_ms
from data_plane.storage.messages.conversation_protocol import (
    UNREAD_COUNT_CAP,
    ConversationKind,
    NotTheSender,
    RecallExpired,
)
from data_plane.storage.messages.group_model import Role
from data_plane.storage.messages.protocol import MessageStore, UnknownMessage
from data_plane.storage.messages.store import SqlMessageStore
from tests.storage.test_message_contract import (  # noqa: F401  (fixtures)
    anyio_backend,
    mysql_tables,
    send,
    store,
    tenant,
)

USER, GROUP = ConversationKind.USER, ConversationKind.GROUP


async def group_send(store: MessageStore, tenant: str, sender: str, group: str, text: str) -> int:
    result, _ = await store.send_group_message(tenant, sender, group, 1, text.encode(), "", None)
    return result.message_id


@pytest.mark.anyio
async def test_the_list_follows_sends_newest_first_with_unread_counts(
    store: MessageStore, tenant: str
) -> None:
    group = await store.create_group(tenant, "alice", "g", "", "", ["bob", "carol"])
    first = await send(store, tenant, "alice", "bob", "hello bob")
    await send(store, tenant, "bob", "alice", "hi alice")
    last_group = await group_send(store, tenant, "carol", group.group_id, "x" * 200)
    await send(store, tenant, "carol", "bob", "psst")
    page = await store.list_conversations(tenant, "bob", 0, 10)
    assert [(c.kind, c.peer) for c in page.conversations] == [
        (USER, "carol"),
        (GROUP, group.group_id),
        (USER, "alice"),
    ]
    assert not page.has_more
    carol, in_group, alice = page.conversations
    assert (carol.last_sender, carol.preview, carol.unread) == ("carol", "psst", 1)
    assert (in_group.last_message_id, in_group.last_sender) == (last_group, "carol")
    assert in_group.preview == "x" * 64 and in_group.unread == 1
    assert (alice.last_sender, alice.preview, alice.unread) == ("bob", "hi alice", 1)
    assert alice.read_message_id == 0 and alice.last_seq > 0
    # The sender's own messages never count as unread.
    [mine] = (await store.list_conversations(tenant, "carol", 0, 1)).conversations
    assert (mine.peer, mine.unread) == ("bob", 0)
    # Paging by last_seq walks the rest.
    one = await store.list_conversations(tenant, "bob", 0, 1)
    assert one.has_more and one.conversations[0].peer == "carol"
    rest = await store.list_conversations(tenant, "bob", one.conversations[0].last_seq, 5)
    assert [c.peer for c in rest.conversations] == [group.group_id, "alice"]
    found = await store.get_conversation(tenant, "alice", USER, "bob")
    assert found is not None and found.unread == 1 and found.last_sender == "bob"
    assert await store.get_conversation(tenant, "alice", USER, "nobody") is None
    assert first > 0


@pytest.mark.anyio
async def test_reading_moves_forward_only_and_leaves_later_messages_unread(
    store: MessageStore, tenant: str
) -> None:
    ids = [await send(store, tenant, "alice", "bob", f"m{i}") for i in range(5)]
    await send(store, tenant, "bob", "alice", "reply")
    read = await store.mark_read(tenant, "bob", USER, "alice", ids[2])
    assert read.moved and read.conversation.unread == 2
    assert read.conversation.read_message_id == ids[2]
    back = await store.mark_read(tenant, "bob", USER, "alice", ids[1])
    assert not back.moved and back.conversation.read_message_id == ids[2]
    await send(store, tenant, "alice", "bob", "more")
    conv = await store.get_conversation(tenant, "bob", USER, "alice")
    assert conv is not None and conv.unread == 3
    done = await store.mark_read(tenant, "bob", USER, "alice", conv.last_message_id)
    assert done.moved and done.conversation.unread == 0
    listed = (await store.list_conversations(tenant, "bob", 0, 5)).conversations[0]
    assert listed.unread == 0 and listed.read_seq == conv.last_seq
    with pytest.raises(UnknownMessage):  # alice's message is not in bob's talk with carol
        await store.mark_read(tenant, "bob", USER, "carol", ids[0])
    with pytest.raises(UnknownMessage):
        await store.mark_read(tenant, "carol", USER, "alice", ids[0])


@pytest.mark.anyio
async def test_history_pages_back_through_one_conversation_only(
    store: MessageStore, tenant: str
) -> None:
    ids: list[int] = []
    for i in range(25):
        ids.append(
            await send(
                store, tenant, "alice" if i % 2 else "bob", "bob" if i % 2 else "alice", f"m{i}"
            )
        )
        await send(store, tenant, "carol", "bob", f"noise{i}")
    seen: list[int] = []
    before = 0
    while True:
        page = await store.history(tenant, "bob", USER, "alice", before, 10)
        seen.extend(h.entry.message_id for h in page.entries)
        if not page.has_more:
            break
        before = page.entries[-1].entry.message_id
    assert seen == ids[::-1]
    newest = (await store.history(tenant, "bob", USER, "alice", 0, 1)).entries[0]
    assert newest.content.body == b"m24" and not newest.content.recalled
    with pytest.raises(UnknownMessage):  # a message of another conversation as the anchor
        await store.history(tenant, "bob", USER, "carol", ids[0], 10)
    assert (await store.history(tenant, "dave", USER, "alice", 0, 10)).entries == []


@pytest.mark.anyio
async def test_group_history_starts_at_the_join_and_read_counts_follow_members(
    store: MessageStore, tenant: str
) -> None:
    group = await store.create_group(tenant, "alice", "g", "", "", ["bob", "carol"])
    g = group.group_id
    before_join = await group_send(store, tenant, "alice", g, "early")
    await store.join_group(tenant, g, "dave")
    after_join = await group_send(store, tenant, "alice", g, "late")
    dave = await store.history(tenant, "dave", GROUP, g, 0, 10)
    assert [h.entry.message_id for h in dave.entries] == [after_join]
    bob = await store.history(tenant, "bob", GROUP, g, 0, 10)
    assert [h.entry.message_id for h in bob.entries] == [after_join, before_join]
    count = await store.read_count(tenant, "alice", after_join)
    assert (count.read, count.members) == (0, 3)
    await store.mark_read(tenant, "bob", GROUP, g, after_join)
    await store.mark_read(tenant, "carol", GROUP, g, before_join)
    assert (await store.read_count(tenant, "alice", after_join)).read == 1
    assert (await store.read_count(tenant, "alice", before_join)).read == 2
    with pytest.raises(NotTheSender):
        await store.read_count(tenant, "bob", after_join)
    one_to_one = await send(store, tenant, "alice", "bob", "direct")
    with pytest.raises(UnknownMessage):
        await store.read_count(tenant, "alice", one_to_one)


@pytest.mark.anyio
async def test_recall_leaves_a_tombstone_everywhere_within_the_window_only(
    store: MessageStore, tenant: str
) -> None:
    keep = await send(store, tenant, "alice", "bob", "keep")
    gone = await send(store, tenant, "alice", "bob", "secret")
    with pytest.raises(NotTheSender):
        await store.recall(tenant, "bob", gone, 0)
    with pytest.raises(RecallExpired):
        await store.recall(tenant, "alice", gone, wall_clock_ms() + 60_000)
    result = await store.recall(tenant, "alice", gone, wall_clock_ms() - 60_000)
    assert not result.already and result.recipients == ["alice", "bob"]
    assert result.message.body == b"" and result.recalled_at > 0
    for account in ("alice", "bob"):
        [content] = await store.get_contents(tenant, account, [gone])
        assert content.recalled and content.body == b"" and content.extra == ""
        peer = "bob" if account == "alice" else "alice"
        history = await store.history(tenant, account, USER, peer, 0, 10)
        assert [(h.content.body, h.content.recalled) for h in history.entries] == [
            (b"", True),
            (b"keep", False),
        ]
        conv = await store.get_conversation(tenant, account, USER, peer)
        assert conv is not None and conv.preview == "" and conv.last_message_id == gone
    again = await store.recall(tenant, "alice", gone, wall_clock_ms() + 60_000)
    assert again.already and again.recalled_at == result.recalled_at
    with pytest.raises(UnknownMessage):
        await store.recall(tenant, "carol", keep, 0)
    group = await store.create_group(tenant, "alice", "g", "", "", ["bob", "carol"])
    said = await group_send(store, tenant, "bob", group.group_id, "oops")
    recalled = await store.recall(tenant, "bob", said, 0)
    assert recalled.recipients == ["alice", "bob", "carol"]
    [content] = await store.get_contents(tenant, "carol", [said])
    assert content.recalled and content.body == b""
    # The group's owner may recall a member's message; another member may not.
    spam = await group_send(store, tenant, "carol", group.group_id, "spam")
    with pytest.raises(NotTheSender):
        await store.recall(tenant, "bob", spam, 0)
    by_owner = await store.recall(tenant, "alice", spam, 0)
    assert by_owner.message.sender == "carol" and not by_owner.already
    [content] = await store.get_contents(tenant, "bob", [spam])
    assert content.recalled
    # So may an admin (group roles): bob, made one, recalls carol's message.
    again_spam = await group_send(store, tenant, "carol", group.group_id, "spam again")
    assert await store.set_member(tenant, group.group_id, "bob", role=Role.ADMIN)
    by_admin = await store.recall(tenant, "bob", again_spam, 0)
    assert by_admin.message.sender == "carol" and not by_admin.already
    [content] = await store.get_contents(tenant, "carol", [again_spam])
    assert content.recalled and content.body == b""
    # An admin no longer: refused again.
    later = await group_send(store, tenant, "carol", group.group_id, "later")
    assert await store.set_member(tenant, group.group_id, "bob", role=Role.MEMBER)
    with pytest.raises(NotTheSender):
        await store.recall(tenant, "bob", later, 0)


@pytest.mark.anyio
async def test_delete_hides_a_message_from_one_account_only(
    store: MessageStore, tenant: str
) -> None:
    first = await send(store, tenant, "alice", "bob", "one")
    second = await send(store, tenant, "alice", "bob", "two")
    assert await store.hide_message(tenant, "bob", first)
    assert not await store.hide_message(tenant, "bob", first)
    index = await store.list_index(tenant, "bob", "d", 0, 10)
    assert [e.message_id for e in index.entries] == [second]
    assert await store.get_contents(tenant, "bob", [first, second]) != []
    assert [c.message_id for c in await store.get_contents(tenant, "bob", [first, second])] == [
        second
    ]
    history = await store.history(tenant, "bob", USER, "alice", 0, 10)
    assert [h.entry.message_id for h in history.entries] == [second]
    alice = await store.history(tenant, "alice", USER, "bob", 0, 10)
    assert [h.entry.message_id for h in alice.entries] == [second, first]
    assert await store.ack(tenant, "bob", "d", first)  # the row stays: acks still work
    with pytest.raises(UnknownMessage):
        await store.hide_message(tenant, "carol", first)


@pytest.mark.anyio
async def test_unread_count_of_a_read_far_behind_is_capped(
    store: MessageStore, tenant: str
) -> None:
    first = await send(store, tenant, "alice", "bob", "start")
    for start in range(0, UNREAD_COUNT_CAP + 5, 100):
        async with anyio.create_task_group() as tg:
            for i in range(start, min(start + 100, UNREAD_COUNT_CAP + 5)):
                tg.start_soon(send, store, tenant, "alice", "bob", f"m{i}")
    conv = await store.get_conversation(tenant, "bob", USER, "alice")
    assert conv is not None and conv.unread == UNREAD_COUNT_CAP + 6
    read = await store.mark_read(tenant, "bob", USER, "alice", first)
    assert read.conversation.unread == UNREAD_COUNT_CAP


@pytest.mark.anyio
async def test_bulk_group_messages_keep_conversations_like_row_by_row(
    store: MessageStore, tenant: str
) -> None:
    if isinstance(store, SqlMessageStore):
        store.send_writes.bulk_min_members = 2  # every group goes through INSERT … SELECT
    group = await store.create_group(tenant, "alice", "g", "", "", ["bob", "carol"])
    g = group.group_id
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(group_send, store, tenant, ["alice", "bob"][i % 2], g, f"m{i}")
    unread = {}
    for account in ("alice", "bob", "carol"):
        conv = await store.get_conversation(tenant, account, GROUP, g)
        assert conv is not None
        history = await store.history(tenant, account, GROUP, g, 0, 10)
        assert conv.last_message_id == history.entries[0].entry.message_id
        assert conv.preview == history.entries[0].content.body.decode()
        unread[account] = conv.unread
    assert unread == {"alice": 3, "bob": 3, "carol": 6}


@pytest.mark.anyio
async def test_a_batch_of_both_directions_keeps_each_side_exact(
    store: MessageStore, tenant: str
) -> None:
    """Sends of one conversation in both directions, queued together (on SQL one group
    commit merges each side's rows): each side's last message is the newest, its
    unread count the other party's messages."""
    senders = ["alice", "bob", "bob", "alice", "bob", "alice", "alice", "bob", "bob", "bob"]
    async with anyio.create_task_group() as tg:
        for i, who in enumerate(senders):
            other = "bob" if who == "alice" else "alice"
            tg.start_soon(send, store, tenant, who, other, f"m{i} from {who}")
    for account, peer in (("alice", "bob"), ("bob", "alice")):
        conv = await store.get_conversation(tenant, account, USER, peer)
        assert conv is not None
        history = await store.history(tenant, account, USER, peer, 0, 20)
        newest = history.entries[0]
        assert len(history.entries) == len(senders)
        assert conv.last_message_id == newest.entry.message_id
        assert conv.preview == newest.content.body.decode()
        assert conv.unread == senders.count(peer)
