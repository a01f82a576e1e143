"""Contract suite of ``MessageStore``: memory, SQLite and MySQL behave the same.

Every test uses a tenant of its own, so the MySQL variant shares one database per module.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError

from cirno.harness.ports import free_port
from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.ids import wall_clock_ms
from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.factory import open_message_store
from data_plane.storage.messages.memory import MemoryMessageStore
from data_plane.storage.messages.protocol import (
    Direction,
    GroupNotFound,
    InboxMessage,
    IndexEntry,
    InvalidField,
    MessageStore,
    NotAMember,
    SendResult,
    UnknownMessage,
)
from data_plane.storage.messages.schema import metadata
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from data_plane.storage.urls import sync_url

BACKENDS = ["memory", "sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]
SQL_BACKENDS = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def mysql_tables(mysql_url: str) -> Iterator[str]:
    """The module's MySQL database with the message tables."""
    engine = create_engine(sync_url(mysql_url))
    metadata.create_all(engine)
    engine.dispose()
    yield mysql_url


def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """A URL with the tables created, for ``backend``."""
    if backend == "memory":
        return None
    if backend == "mysql":
        url: str = request.getfixturevalue("mysql_tables")
        return url
    url = f"sqlite:///{tmp_path / 'messages.db'}"
    engine = create_engine(sync_url(url))
    metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageStore]:
    url = database_url(request.param, request, tmp_path)
    async with open_message_store(url, node_id=1) as opened:
        yield opened


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = database_url(request.param, request, tmp_path)
    assert url is not None
    return url


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def send(store: MessageStore, tenant: str, sender: str, receiver: str, text: str) -> int:
    result = await store.send_user_message(tenant, sender, receiver, 1, text.encode(), "", None)
    return result.message_id


async def read_all(
    store: MessageStore, tenant: str, account: str, device: str = "d", limit: int = 1000
) -> list[IndexEntry]:
    """Page through an inbox from the device's read index until an empty page."""
    entries: list[IndexEntry] = []
    after = 0
    while True:
        page = await store.list_index(tenant, account, device, after, limit)
        if not page.entries:
            assert not page.has_more
            return entries
        entries.extend(page.entries)
        after = page.entries[-1].message_id


# -- 1:1 messages -------------------------------------------------------------------


@pytest.mark.anyio
async def test_send_writes_content_once_and_both_inboxes(store: MessageStore, tenant: str) -> None:
    result = await store.send_user_message(tenant, "alice", "bob", 1, b"hi", '{"k":1}', None)
    assert result.message_id > 0 and not result.duplicate and result.seq == 0
    assert abs(result.send_time - wall_clock_ms()) < 60_000
    [received] = (await store.list_index(tenant, "bob", "d", 0, 10)).entries
    assert received == IndexEntry(
        result.message_id, Direction.RECEIVED, result.send_time, "alice", "", 1
    )
    [sent] = (await store.list_index(tenant, "alice", "d", 0, 10)).entries
    assert sent == IndexEntry(result.message_id, Direction.SENT, result.send_time, "bob", "", 1)
    for account in ("alice", "bob"):
        [content] = await store.get_contents(tenant, account, [result.message_id])
        assert (content.message_id, content.type, content.body, content.extra) == (
            result.message_id,
            1,
            b"hi",
            '{"k":1}',
        )


@pytest.mark.anyio
async def test_a_message_to_oneself_gets_one_sent_row(store: MessageStore, tenant: str) -> None:
    message_id = await send(store, tenant, "alice", "alice", "note")
    entries = await read_all(store, tenant, "alice")
    assert [(e.message_id, e.direction, e.account_b) for e in entries] == [
        (message_id, Direction.SENT, "alice")
    ]


@pytest.mark.anyio
async def test_ten_messages_listed_in_order_then_nothing_after_the_last(
    store: MessageStore, tenant: str
) -> None:
    sent = [await send(store, tenant, "alice", "bob", f"m{i}") for i in range(10)]
    page = await store.list_index(tenant, "bob", "d", 0, 100)
    assert [e.message_id for e in page.entries] == sent
    assert [e.seq for e in page.entries] == list(range(1, 11))
    assert {(e.direction, e.account_b, e.group_id) for e in page.entries} == {
        (Direction.RECEIVED, "alice", "")
    }
    assert not page.has_more
    after_last = await store.list_index(tenant, "bob", "d", sent[-1], 100)
    assert after_last.entries == [] and not after_last.has_more
    middle = await store.list_index(tenant, "bob", "d", sent[4], 100)
    assert [e.message_id for e in middle.entries] == sent[5:]


@pytest.mark.anyio
async def test_pagination_reports_has_more(store: MessageStore, tenant: str) -> None:
    sent = [await send(store, tenant, "alice", "bob", f"m{i}") for i in range(10)]
    pages = []
    after = 0
    while True:
        page = await store.list_index(tenant, "bob", "d", after, 3)
        pages.append(page)
        if not page.has_more:
            break
        after = page.entries[-1].message_id
    assert [len(p.entries) for p in pages] == [3, 3, 3, 1]
    assert [p.has_more for p in pages] == [True, True, True, False]
    assert [e.message_id for p in pages for e in p.entries] == sent
    exact = await store.list_index(tenant, "bob", "d", sent[4], 5)
    assert len(exact.entries) == 5 and not exact.has_more
    with pytest.raises(ValueError):
        await store.list_index(tenant, "bob", "d", 0, 0)


@pytest.mark.anyio
async def test_contents_in_request_order_foreign_ids_left_out(
    store: MessageStore, tenant: str
) -> None:
    m1, m2, m3 = [await send(store, tenant, "alice", "bob", f"m{i}") for i in range(3)]
    foreign = await send(store, tenant, "carol", "dave", "not yours")
    contents = await store.get_contents(tenant, "bob", [m3, m1, foreign, 999_999, m3, m2])
    assert [c.message_id for c in contents] == [m3, m1, m2]
    assert [c.body for c in contents] == [b"m2", b"m0", b"m1"]
    assert await store.get_contents(tenant, "bob", []) == []


@pytest.mark.anyio
async def test_ack_moves_the_read_index_forward_only(store: MessageStore, tenant: str) -> None:
    sent = [await send(store, tenant, "alice", "bob", f"m{i}") for i in range(5)]
    assert await store.ack(tenant, "bob", "phone", sent[2]) is True
    assert await store.ack(tenant, "bob", "phone", sent[0]) is False
    assert await store.ack(tenant, "bob", "phone", sent[2]) is False
    page = await store.list_index(tenant, "bob", "phone", 0, 10)
    assert [e.message_id for e in page.entries] == sent[3:]
    other_device = await store.list_index(tenant, "bob", "web", 0, 10)
    assert [e.message_id for e in other_device.entries] == sent
    assert await store.ack(tenant, "bob", "phone", sent[4]) is True
    assert (await store.list_index(tenant, "bob", "phone", 0, 10)).entries == []


@pytest.mark.anyio
async def test_concurrent_acks_of_one_device_keep_the_newest(
    store: MessageStore, tenant: str
) -> None:
    sent = [await send(store, tenant, "alice", "bob", f"m{i}") for i in range(6)]
    moved: list[bool] = []

    async def ack(message_id: int) -> None:
        moved.append(await store.ack(tenant, "bob", "d", message_id))

    async with anyio.create_task_group() as tg:
        for message_id in reversed(sent):
            tg.start_soon(ack, message_id)
    assert moved.count(True) >= 1
    assert (await store.list_index(tenant, "bob", "d", 0, 10)).entries == []


@pytest.mark.anyio
async def test_unknown_messages(store: MessageStore, tenant: str) -> None:
    bobs = await send(store, tenant, "alice", "bob", "m")
    with pytest.raises(UnknownMessage):
        await store.ack(tenant, "bob", "d", 123_456)
    with pytest.raises(UnknownMessage):
        await store.ack(tenant, "carol", "d", bobs)
    with pytest.raises(UnknownMessage):
        await store.list_index(tenant, "carol", "d", bobs, 10)
    assert await store.ack(tenant, "bob", "d", bobs) is True


@pytest.mark.anyio
async def test_resend_with_the_same_client_id_is_idempotent(
    store: MessageStore, tenant: str
) -> None:
    first = await store.send_user_message(tenant, "alice", "bob", 1, b"x", "", "c-1")
    again = await store.send_user_message(tenant, "alice", "bob", 1, b"changed", "", "c-1")
    assert not first.duplicate and again.duplicate
    assert (again.message_id, again.send_time) == (first.message_id, first.send_time)
    other_sender = await store.send_user_message(tenant, "carol", "bob", 1, b"y", "", "c-1")
    assert not other_sender.duplicate
    no_ids = [await store.send_user_message(tenant, "alice", "bob", 1, b"z", "", None)]
    no_ids.append(await store.send_user_message(tenant, "alice", "bob", 1, b"z", "", None))
    assert not any(r.duplicate for r in no_ids)
    entries = await read_all(store, tenant, "bob")
    expected = [first.message_id, other_sender.message_id] + [r.message_id for r in no_ids]
    assert [e.message_id for e in entries] == expected
    [content] = await store.get_contents(tenant, "bob", [first.message_id])
    assert content.body == b"x"


@pytest.mark.anyio
async def test_duplicates_in_flight_together_store_one_message(
    store: MessageStore, tenant: str
) -> None:
    results: list[SendResult] = []

    async def resend() -> None:
        results.append(await store.send_user_message(tenant, "alice", "bob", 1, b"x", "", "dup"))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(resend)
    assert len({(r.message_id, r.send_time) for r in results}) == 1
    assert [r.duplicate for r in results].count(False) == 1
    assert len(await read_all(store, tenant, "bob")) == 1
    assert len(await read_all(store, tenant, "alice")) == 1


@pytest.mark.anyio
async def test_tenants_are_isolated(store: MessageStore, tenant: str) -> None:
    other = tenant + "-other"
    message_id = await send(store, tenant, "alice", "bob", "m")
    group = await store.create_group(tenant, "alice", "g", "", "", ["bob"])
    assert (await store.list_index(other, "bob", "d", 0, 10)).entries == []
    assert await store.get_contents(other, "bob", [message_id]) == []
    with pytest.raises(UnknownMessage):
        await store.ack(other, "bob", "d", message_id)
    with pytest.raises(GroupNotFound):
        await store.get_group(other, group.group_id)
    assert not await store.is_member(other, group.group_id, "bob")
    dup = await store.send_user_message(tenant, "alice", "bob", 1, b"x", "", "same")
    elsewhere = await store.send_user_message(other, "alice", "bob", 1, b"x", "", "same")
    assert not dup.duplicate and not elsewhere.duplicate
    assert [e.message_id for e in await read_all(store, other, "bob")] == [elsewhere.message_id]


@pytest.mark.anyio
async def test_invalid_fields_are_refused(store: MessageStore, tenant: str) -> None:
    with pytest.raises(InvalidField):
        await store.send_user_message(tenant, "alice", "", 1, b"x", "", None)
    with pytest.raises(InvalidField):
        await store.send_user_message(tenant, "alice", "bob", 1, b"x", "e" * 5000, None)
    with pytest.raises(InvalidField):
        await store.send_user_message(tenant, "a" * 65, "bob", 1, b"x", "", None)
    with pytest.raises(InvalidField):
        await store.send_user_message(tenant, "alice", "bob ", 1, b"x", "", None)
    with pytest.raises(InvalidField):
        await store.send_user_message(tenant, "alice", "bob", 2**31, b"x", "", None)
    with pytest.raises(InvalidField):
        await store.create_group(tenant, "alice", "n" * 200, "", "", [])
    with pytest.raises(InvalidField):
        await store.create_group(tenant, "alice", "", "", "", ["carol "])
    with pytest.raises(InvalidField):
        await store.ack(tenant, "bob", "phone ", 1)
    assert (await store.list_index(tenant, "bob", "d", 0, 10)).entries == []


@pytest.mark.anyio
async def test_large_body_round_trips(store: MessageStore, tenant: str) -> None:
    body = bytes(range(256)) * 400  # 100 KiB: more than a MySQL BLOB holds
    result = await store.send_user_message(tenant, "alice", "bob", 2, body, "", None)
    [content] = await store.get_contents(tenant, "bob", [result.message_id])
    assert content.body == body and content.type == 2


# -- concurrency --------------------------------------------------------------------


async def _senders_and_reader(
    stores: list[MessageStore], tenant: str, senders: int, per_sender: int
) -> None:
    """``senders`` tasks (spread over ``stores``) send to one receiver while a reader pages.

    The reader must end with every acknowledged message exactly once, each sender's
    messages in send order, and inbox sequences 1..N without gaps.
    """
    acknowledged: dict[str, list[int]] = {}
    seen: list[IndexEntry] = []
    done = anyio.Event()

    async def sender(index: int) -> None:
        name = f"s{index}"
        acknowledged[name] = []
        store = stores[index % len(stores)]
        for i in range(per_sender):
            acknowledged[name].append(await send(store, tenant, name, "rcv", f"{name}-{i}"))

    async def reader() -> None:
        after = 0
        while True:
            finished = done.is_set()
            page = await stores[0].list_index(tenant, "rcv", "reader", after, 37)
            seen.extend(page.entries)
            if page.entries:
                after = page.entries[-1].message_id
            elif finished:
                return
            else:
                await anyio.sleep(0.002)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        async with anyio.create_task_group() as sending:
            for index in range(senders):
                sending.start_soon(sender, index)
        done.set()
    total = senders * per_sender
    assert [e.seq for e in seen] == list(range(1, total + 1))
    assert len({e.message_id for e in seen}) == total
    for name, sent in acknowledged.items():
        assert [e.message_id for e in seen if e.account_b == name] == sent


@pytest.mark.anyio
async def test_concurrent_senders_while_a_reader_pages(store: MessageStore, tenant: str) -> None:
    await _senders_and_reader([store], tenant, senders=8, per_sender=50)


@pytest.mark.anyio
async def test_two_nodes_send_to_one_receiver(sql_url: str, tenant: str) -> None:
    async with (
        open_sql_message_store(sql_url, node_id=11) as one,
        open_sql_message_store(sql_url, node_id=12) as two,
    ):
        await _senders_and_reader([one, two], tenant, senders=8, per_sender=40)
        # The same client id sent through both nodes at once is stored once.
        results: list[SendResult] = []

        async def resend(store: MessageStore) -> None:
            results.append(await store.send_user_message(tenant, "x", "rcv2", 1, b"", "", "c"))

        async with anyio.create_task_group() as tg:
            for store in (one, two, one, two):
                tg.start_soon(resend, store)
        assert len({r.message_id for r in results}) == 1
        assert [r.duplicate for r in results].count(False) == 1
        assert len(await read_all(one, tenant, "rcv2")) == 1


@pytest.mark.anyio
async def test_concurrent_sends_share_transactions(sql_url: str, tenant: str) -> None:
    async with open_sql_message_store(sql_url, node_id=3) as store:
        before = store.flushes
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(send, store, tenant, f"s{i % 10}", "rcv", "m")
        assert store.flushes - before <= 20
        assert len(await read_all(store, tenant, "rcv")) == 100


@pytest.mark.anyio
async def test_an_item_the_database_refuses_fails_alone(
    sql_url: str, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_sql_message_store(sql_url, node_id=4, linger_s=0.02) as store:
        write_sends = store.send_writes.write

        async def refuse_poison(conn: WriterConnection, items: Sequence[Any]) -> Any:
            if any(item.body == b"poison" for item in items):
                raise IntegrityError("INSERT …", {}, Exception("refused"))
            return await write_sends(conn, items)

        monkeypatch.setattr(store.send_writes, "write", refuse_poison)
        outcomes: dict[bytes, str] = {}

        async def attempt(body: bytes) -> None:
            try:
                await store.send_user_message(tenant, "alice", "bob", 1, body, "", None)
                outcomes[body] = "stored"
            except MessageStoreUnavailable:
                outcomes[body] = "unavailable"

        async with anyio.create_task_group() as tg:
            for body in (b"a", b"b", b"poison", b"c"):
                tg.start_soon(attempt, body)
        assert outcomes == {
            b"a": "stored",
            b"b": "stored",
            b"poison": "unavailable",
            b"c": "stored",
        }
        entries = await read_all(store, tenant, "bob")
        contents = await store.get_contents(tenant, "bob", [e.message_id for e in entries])
        assert [c.body for c in contents] == [b"a", b"b", b"c"]


# -- inbox heads and re-reads (the gateway's gap filling) ---------------------------


@pytest.mark.anyio
async def test_inbox_heads_and_read_inbox_rebuild_every_row(
    store: MessageStore, tenant: str
) -> None:
    assert await store.inbox_heads(tenant, ["alice", "nobody"]) == {"alice": 0, "nobody": 0}
    one = await store.send_user_message(tenant, "bob", "alice", 1, b"one", "x", "c1")
    two = await store.send_user_message(tenant, "alice", "bob", 2, b"two", "", None)
    group = await store.create_group(tenant, "carol", "g", "", "", ["alice", "bob"])
    three, members = await store.send_group_message(
        tenant, "bob", group.group_id, 3, b"three", "", "c3"
    )
    assert three.member_seqs == tuple([{"carol": 1, "alice": 3, "bob": 3}[m] for m in members])
    assert three.inbox_seq == 3
    heads = await store.inbox_heads(tenant, ["alice", "bob", "carol", "nobody"])
    assert heads == {"alice": 3, "bob": 3, "carol": 1, "nobody": 0}
    rows = await store.read_inbox(tenant, "alice", 0, 10)
    assert rows == [
        InboxMessage(1, one.message_id, Direction.RECEIVED, "bob", "", 0, one.send_time, 1,
                     b"one", "x", "c1"),
        InboxMessage(2, two.message_id, Direction.SENT, "bob", "", 0, two.send_time, 2,
                     b"two", "", ""),
        InboxMessage(3, three.message_id, Direction.RECEIVED, "bob", group.group_id, 1,
                     three.send_time, 3, b"three", "", "c3"),
    ]  # fmt: skip
    assert await store.read_inbox(tenant, "alice", 1, 1) == rows[1:2]
    assert await store.read_inbox(tenant, "alice", 3, 10) == []


# -- groups -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_group_owner_always_member(store: MessageStore, tenant: str) -> None:
    group = await store.create_group(tenant, "owner", "name", "av", "intro", ["b", "a", "b"])
    assert group.group_id and group.owner == "owner" and group.created_at > 0
    assert sorted(m.account for m in group.members) == ["a", "b", "owner"]
    fetched = await store.get_group(tenant, group.group_id)
    assert fetched == group
    assert (fetched.name, fetched.avatar, fetched.introduction) == ("name", "av", "intro")
    assert await store.members(tenant, group.group_id) == group.members
    assert await store.is_member(tenant, group.group_id, "owner")
    assert not await store.is_member(tenant, group.group_id, "stranger")
    alone = await store.create_group(tenant, "solo", "", "", "", [])
    assert [m.account for m in alone.members] == ["solo"]
    assert alone.group_id != group.group_id


@pytest.mark.anyio
async def test_join_and_quit(store: MessageStore, tenant: str) -> None:
    group = await store.create_group(tenant, "owner", "g", "", "", [])
    gid = group.group_id
    assert await store.join_group(tenant, gid, "a") is True
    assert await store.join_group(tenant, gid, "a") is False
    assert sorted(m.account for m in await store.members(tenant, gid)) == ["a", "owner"]
    assert await store.quit_group(tenant, gid, "a") is True
    assert await store.quit_group(tenant, gid, "a") is False
    assert not await store.is_member(tenant, gid, "a")
    for call in (
        store.join_group(tenant, "nope", "a"),
        store.quit_group(tenant, "nope", "a"),
        store.get_group(tenant, "nope"),
        store.members(tenant, "nope"),
    ):
        with pytest.raises(GroupNotFound):
            await call
    assert not await store.is_member(tenant, "nope", "a")


@pytest.mark.anyio
async def test_group_talk_refused_to_strangers(store: MessageStore, tenant: str) -> None:
    group = await store.create_group(tenant, "owner", "g", "", "", ["a"])
    with pytest.raises(NotAMember):
        await store.send_group_message(tenant, "stranger", group.group_id, 1, b"x", "", None)
    with pytest.raises(GroupNotFound):
        await store.send_group_message(tenant, "a", "nope", 1, b"x", "", None)
    assert (await store.list_index(tenant, "a", "d", 0, 10)).entries == []


@pytest.mark.anyio
@pytest.mark.parametrize("size", [2, 40], ids=["row-by-row", "bulk"])
async def test_the_system_sender_talks_in_any_group_without_a_row(
    store: MessageStore, tenant: str, size: int
) -> None:
    members = [f"m{i}" for i in range(size)]
    group = await store.create_group(tenant, "owner", "g", "", "", members)
    gid = group.group_id
    result, reached = await store.send_group_message(
        tenant, SYSTEM_SENDER, gid, 1, b"notice", "", "n-1"
    )
    assert sorted(reached) == sorted(["owner", *members])
    assert result.inbox_seq == 0 and len(result.member_seqs) == len(reached)
    again, none = await store.send_group_message(tenant, SYSTEM_SENDER, gid, 1, b"x", "", "n-1")
    assert (again.message_id, again.duplicate, none) == (result.message_id, True, [])
    entries = await read_all(store, tenant, "m0")
    assert [(e.message_id, e.account_b) for e in entries] == [(result.message_id, SYSTEM_SENDER)]
    assert await read_all(store, tenant, SYSTEM_SENDER) == []


@pytest.mark.anyio
async def test_group_message_reaches_every_member_once(store: MessageStore, tenant: str) -> None:
    group = await store.create_group(tenant, "owner", "g", "", "", ["a", "b"])
    gid = group.group_id
    results = []
    for i in range(3):
        result, members = await store.send_group_message(
            tenant, "a", gid, 1, f"g{i}".encode(), "", None
        )
        assert sorted(members) == ["a", "b", "owner"]
        results.append(result)
    assert [r.seq for r in results] == [1, 2, 3]
    for account in ("owner", "a", "b"):
        entries = await read_all(store, tenant, account)
        assert [e.message_id for e in entries] == [r.message_id for r in results]
        direction = Direction.SENT if account == "a" else Direction.RECEIVED
        assert {(e.direction, e.account_b, e.group_id) for e in entries} == {(direction, "a", gid)}
    contents = await store.get_contents(tenant, "b", [r.message_id for r in results])
    assert [c.body for c in contents] == [b"g0", b"g1", b"g2"]
    dup1, _ = await store.send_group_message(tenant, "b", gid, 1, b"x", "", "cg")
    dup2, again = await store.send_group_message(tenant, "b", gid, 1, b"x", "", "cg")
    assert dup2 == SendResult(dup1.message_id, dup1.send_time, duplicate=True, seq=4)
    assert again == []
    assert len(await read_all(store, tenant, "owner")) == 4


@pytest.mark.anyio
async def test_membership_changes_apply_to_later_messages(store: MessageStore, tenant: str) -> None:
    group = await store.create_group(tenant, "owner", "g", "", "", ["a"])
    gid = group.group_id
    first, _ = await store.send_group_message(tenant, "owner", gid, 1, b"1", "", None)
    await store.join_group(tenant, gid, "late")
    await store.quit_group(tenant, gid, "a")
    second, members = await store.send_group_message(tenant, "owner", gid, 1, b"2", "", None)
    assert sorted(members) == ["late", "owner"]
    assert [e.message_id for e in await read_all(store, tenant, "a")] == [first.message_id]
    assert [e.message_id for e in await read_all(store, tenant, "late")] == [second.message_id]
    with pytest.raises(NotAMember):
        await store.send_group_message(tenant, "a", gid, 1, b"3", "", None)


@pytest.mark.anyio
async def test_concurrent_group_senders_share_one_order(store: MessageStore, tenant: str) -> None:
    group = await store.create_group(tenant, "owner", "g", "", "", ["a", "b", "c"])
    gid = group.group_id
    seq_of: dict[int, int] = {}

    async def talk(account: str) -> None:
        for i in range(25):
            result, _ = await store.send_group_message(
                tenant, account, gid, 1, f"{account}{i}".encode(), "", None
            )
            seq_of[result.message_id] = result.seq

    async with anyio.create_task_group() as tg:
        tg.start_soon(talk, "a")
        tg.start_soon(talk, "b")
    assert sorted(seq_of.values()) == list(range(1, 51))
    orders = []
    for account in ("owner", "a", "b", "c"):
        entries = await read_all(store, tenant, account)
        orders.append([e.message_id for e in entries])
        assert [seq_of[e.message_id] for e in entries] == list(range(1, 51))
    assert all(order == orders[0] for order in orders)


@pytest.mark.anyio
async def test_a_thousand_member_group(store: MessageStore, tenant: str) -> None:
    accounts = [f"u{i:04d}" for i in range(999)]
    group = await store.create_group(tenant, "owner", "big", "", "", accounts)
    assert len(group.members) == 1000
    result, members = await store.send_group_message(
        tenant, "u0500", group.group_id, 1, b"hello all", "", None
    )
    assert sorted(members) == sorted([*accounts, "owner"])
    for account in ("owner", "u0000", "u0500", "u0998"):
        [entry] = (await store.list_index(tenant, account, "d", 0, 10)).entries
        assert entry.message_id == result.message_id
    rows = 0
    for account in [*accounts, "owner"]:
        rows += len((await store.list_index(tenant, account, "d", 0, 10)).entries)
    assert rows == 1000


# -- failures -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
async def test_unreachable_database_is_unavailable_never_success(
    backend: str, tmp_path: Path, tenant: str
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'messages.db'}"
    else:
        url = f"mysql://root@127.0.0.1:{free_port()}/nothing"
    async with open_sql_message_store(url, node_id=5) as store:
        failures: list[BaseException] = []

        async def attempt() -> None:
            try:
                await store.send_user_message(tenant, "alice", "bob", 1, b"x", "", "c")
            except MessageStoreUnavailable as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(attempt)
        assert len(failures) == 5
        assert all(f.__cause__ is not None for f in failures)
        for call in (
            store.send_group_message(tenant, "alice", "g", 1, b"x", "", None),
            store.ack(tenant, "bob", "d", 1),
            store.list_index(tenant, "bob", "d", 0, 10),
            store.get_contents(tenant, "bob", [1]),
            store.create_group(tenant, "alice", "g", "", "", []),
            store.join_group(tenant, "g", "bob"),
            store.get_group(tenant, "g"),
        ):
            with pytest.raises(MessageStoreUnavailable):
                await call
    await _aiosqlite_threads_finished()


async def _aiosqlite_threads_finished() -> None:
    """Wait for aiosqlite's worker threads of failed connects to stop.

    aiosqlite stops the thread of a connect that failed without waiting for it; if the
    event loop closes first, the thread's answer raises in the thread.
    """
    for _ in range(200):
        if not any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            return
        await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_open_message_store_picks_the_backend(tmp_path: Path) -> None:
    for url in (None, "memory://"):
        async with open_message_store(url, node_id=1) as memory:
            assert isinstance(memory, MemoryMessageStore)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    async with open_message_store(url, node_id=1) as sql:
        assert isinstance(sql, SqlMessageStore)
    with pytest.raises(MessageStoreUnavailable):
        await sql.list_index("t", "a", "d", 0, 1)
