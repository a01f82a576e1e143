"""The SQL send path's driver-level statements: escaping, batch order, two nodes.

The send path renders its statements itself (``messages.statements``; on MySQL inbox and counter
rows as escaped literals), so these tests feed it ids that need escaping, batches that
mix 1:1 and group messages over shared inboxes, and two nodes writing to overlapping
groups at once, and check every inbox against what the guarantees say it must hold.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from data_plane.storage.messages.items import Send
from data_plane.storage.messages.protocol import Direction, MessageStore
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from tests.storage.test_message_contract import (  # noqa: F401  (fixtures)
    database_url,
    mysql_tables,
    read_all,
    sql_url,
    store,
)

TRICKY = ["o'brien", "back\\slash", "100%", "pct%s", "{rows}", 'quo"te', "üñí-测试", "semi;--"]


@pytest.fixture
def tenant() -> str:
    return f"t'%{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def sql_store(sql_url: str) -> AsyncIterator[SqlMessageStore]:  # noqa: F811
    async with open_sql_message_store(sql_url, node_id=21) as opened:
        yield opened


@pytest.mark.anyio
async def test_ids_that_need_escaping_round_trip(store: MessageStore, tenant: str) -> None:  # noqa: F811
    owner, *others = TRICKY
    first = await store.send_user_message(tenant, owner, others[0], 1, b"%s'", "x'%", "c'1%")
    again = await store.send_user_message(tenant, owner, others[0], 1, b"%s'", "x'%", "c'1%")
    assert again.duplicate and again.message_id == first.message_id
    [received] = await read_all(store, tenant, others[0])
    assert (received.message_id, received.direction, received.account_b) == (
        first.message_id,
        Direction.RECEIVED,
        owner,
    )
    group = await store.create_group(tenant, owner, "g'%", "", "", others)
    result, members = await store.send_group_message(
        tenant, others[1], group.group_id, 1, b"hi", "", "g'%s"
    )
    assert sorted(members) == sorted(TRICKY)
    for account in TRICKY:
        entry = (await read_all(store, tenant, account))[-1]
        assert entry.message_id == result.message_id
        assert entry.account_b == others[1] and entry.group_id == group.group_id
        expected = Direction.SENT if account == others[1] else Direction.RECEIVED
        assert entry.direction == expected
    [content] = await store.get_contents(tenant, others[0], [first.message_id])
    assert (content.body, content.extra) == (b"%s'", "x'%")


@pytest.mark.anyio
async def test_a_mixed_batch_numbers_every_inbox_in_batch_order(
    sql_store: SqlMessageStore, tenant: str
) -> None:
    # Counters that already exist, so the batch continues them.
    await sql_store.send_user_message(tenant, "s", "a", 1, b"before", "", None)
    g1 = (await sql_store.create_group(tenant, "s", "g1", "", "", ["a", "b"])).group_id
    g2 = (await sql_store.create_group(tenant, "b", "g2", "", "", ["a", "c"])).group_id

    def user(sender: str, receiver: str, client: str) -> Send:
        return Send(tenant, sender, receiver, "", 1, b"", "", client)

    def grp(sender: str, group_id: str, client: str) -> Send:
        return Send(tenant, sender, "", group_id, 1, b"", "", client)

    batch = [
        user("s", "a", "1"),
        grp("a", g1, "2"),
        user("a", "b", "3"),
        grp("c", g2, "4"),
        grp("s", g1, "5"),
        user("s", "a", "1"),  # a duplicate inside the batch: nothing new
        grp("c", g1, "6"),  # not a member of g1: refused, nothing stored
        user("s", "a", "7"),
        grp("b", g2, "8"),
    ]
    outcomes = await sql_store.sends.flush(batch)
    ids: list[int | None] = []
    for item, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            assert item.client_msg_id == "6"
            ids.append(None)
        else:
            ids.append(outcome[0].message_id if not outcome[0].duplicate else None)
    reaches = {
        "1": {"s", "a"},
        "2": {"s", "a", "b"},
        "3": {"a", "b"},
        "4": {"b", "a", "c"},
        "5": {"s", "a", "b"},
        "7": {"s", "a"},
        "8": {"b", "a", "c"},
    }
    expected: dict[str, list[int]] = defaultdict(list)
    for item, message_id in zip(batch, ids, strict=True):
        if message_id is not None:
            for account in sorted(reaches[item.client_msg_id or ""]):
                expected[account].append(message_id)
    for account in ("s", "a", "b", "c"):
        entries = await read_all(sql_store, tenant, account)
        before = 1 if account in ("s", "a") else 0
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert [e.message_id for e in entries[before:]] == expected[account]
    g1_seqs = [o[0].seq for o in outcomes if not isinstance(o, BaseException) and o[0].seq]
    assert g1_seqs == [1, 1, 2, 2]  # g1: 1, 2; g2: 1, 2, in batch order


@pytest.mark.anyio
async def test_two_nodes_write_overlapping_groups_without_gaps(sql_url: str, tenant: str) -> None:  # noqa: F811
    shared = [f"m{i:03d}" for i in range(60)]
    async with (
        open_sql_message_store(sql_url, node_id=22) as one,
        open_sql_message_store(sql_url, node_id=23) as two,
    ):
        one.send_writes.bulk_min_members = two.send_writes.bulk_min_members = 1
        ga = (await one.create_group(tenant, "m000", "a", "", "", shared[:40])).group_id
        gb = (await two.create_group(tenant, "m059", "b", "", "", shared[20:])).group_id

        async def talk(store: SqlMessageStore, sender: str, group_id: str) -> None:
            for i in range(15):
                await store.send_group_message(tenant, sender, group_id, 1, b"", "", f"{i}")
                await store.send_user_message(tenant, sender, "m030", 1, b"", "", f"u{i}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(talk, one, "m000", ga)
            tg.start_soon(talk, two, "m059", gb)
            tg.start_soon(talk, one, "m025", gb)
            tg.start_soon(talk, two, "m030", ga)
        for account in ("m000", "m025", "m030", "m039", "m059"):
            entries = await read_all(one, tenant, account)
            assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        per_group: dict[str, list[int]] = defaultdict(list)
        contents = await one.get_contents(
            tenant, "m030", [e.message_id for e in await read_all(one, tenant, "m030")]
        )
        assert len(contents) == len(await read_all(one, tenant, "m030"))
        for entry in await read_all(one, tenant, "m030"):
            if entry.group_id:
                per_group[entry.group_id].append(entry.message_id)
        # m030 is in both groups: 30 messages each, in the group's own order.
        assert {g: len(m) for g, m in per_group.items()} == {ga: 30, gb: 30}


@pytest.mark.anyio
@pytest.mark.parametrize("bulk_min_members", [1, 10_000], ids=["bulk", "row-by-row"])
async def test_bulk_groups_and_row_by_row_give_the_same_inboxes(
    sql_store: SqlMessageStore,
    tenant: str,
    bulk_min_members: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = sql_store
    db.send_writes.bulk_min_members = bulk_min_members
    await db.send_user_message(tenant, "x", "a", 1, b"", "", None)  # a's counter exists
    await db.send_user_message(tenant, "x", "k", 1, b"", "", None)
    membership = {
        "g1": ["a", "b", "c"],  # nobody else in the batch reaches them: bulk
        "g2": ["d", "e"],  # bulk too
        "g3": ["h", "i"],  # h also gets a 1:1 message: row by row
        "g4": ["j", "k"],  # g4 and g5 share k: row by row
        "g5": ["k", "l"],
    }
    ids = {
        name: (await db.create_group(tenant, m[0], name, "", "", m)).group_id
        for name, m in membership.items()
    }
    bulk_calls: list[int] = []
    insert_bulk = db.send_writes.statements.insert_bulk_inbox

    async def counting(conn: Any, bulk: Any) -> None:
        bulk_calls.append(bulk.message_id)
        await insert_bulk(conn, bulk)

    monkeypatch.setattr(db.send_writes.statements, "insert_bulk_inbox", counting)

    def user(sender: str, receiver: str) -> Send:
        return Send(tenant, sender, receiver, "", 1, b"", "", None)

    def grp(sender: str, name: str) -> Send:
        return Send(tenant, sender, "", ids[name], 1, b"", "", None)

    batch = [
        grp("a", "g1"),
        user("x", "y"),
        grp("d", "g2"),
        grp("b", "g1"),
        grp("h", "g3"),
        user("x", "h"),
        grp("j", "g4"),
        grp("l", "g5"),
        grp("c", "g1"),
        grp("e", "g2"),
    ]
    outcomes = await db.sends.flush(batch)
    expected: dict[str, list[tuple[int, Direction, str, str]]] = defaultdict(list)
    group_seqs: dict[str, list[int]] = defaultdict(list)
    name_of = {gid: name for name, gid in ids.items()}
    for item, outcome in zip(batch, outcomes, strict=True):
        assert not isinstance(outcome, BaseException)
        result, receivers = outcome
        if item.group_id:
            members = membership[name_of[item.group_id]]
            assert sorted(receivers) == sorted(members)
            group_seqs[item.group_id].append(result.seq)
            for account in members:
                direction = Direction.SENT if account == item.sender else Direction.RECEIVED
                expected[account].append((result.message_id, direction, item.sender, item.group_id))
        else:
            expected[item.receiver].append((result.message_id, Direction.RECEIVED, "x", ""))
            expected["x"].append((result.message_id, Direction.SENT, item.receiver, ""))
    assert len(bulk_calls) == (5 if bulk_min_members == 1 else 0)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in group_seqs.values())
    for account in ["x", "y", *sorted({a for m in membership.values() for a in m})]:
        entries = await read_all(db, tenant, account)
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        before = {"a": 1, "k": 1, "x": 2}.get(account, 0)
        got = [(e.message_id, e.direction, e.account_b, e.group_id) for e in entries[before:]]
        assert got == expected[account], account
    # Every group send reports each member's row, bulk or not (pushes carry them).
    seq_of = {
        (account, e.message_id): e.seq
        for account in sorted({a for m in membership.values() for a in m})
        for e in await read_all(db, tenant, account)
    }
    for item, outcome in zip(batch, outcomes, strict=True):
        assert not isinstance(outcome, BaseException)
        result, receivers = outcome
        if item.group_id:
            assert result.member_seqs == tuple(seq_of[(a, result.message_id)] for a in receivers)
            assert result.inbox_seq == seq_of[(item.sender, result.message_id)]


@pytest.mark.anyio
@pytest.mark.parametrize("concat_max", [None, 4], ids=["one-value", "cut-short"])
async def test_group_members_come_back_complete_in_join_order(
    sql_url: str,  # noqa: F811
    tenant: str,
    concat_max: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 is MySQL's smallest group_concat_max_len: every list is cut and read row by row.
    if concat_max is not None:
        monkeypatch.setattr("data_plane.storage.messages.engine.GROUP_CONCAT_MAX", concat_max)
    async with open_sql_message_store(sql_url, node_id=24) as db:
        owner, *others = TRICKY
        group = await db.create_group(tenant, owner, "g", "", "", others)
        late = ["zz-late", "a,b", "00"]  # joined later: after everyone else, in join order
        for account in late:
            await anyio.sleep(0.002)
            assert await db.join_group(tenant, group.group_id, account)
        _, receivers = await db.send_group_message(tenant, owner, group.group_id, 1, b"", "", None)
        assert receivers == [
            m.account for m in (await db.get_group(tenant, group.group_id)).members
        ]
        assert receivers[-3:] == late and sorted(receivers) == sorted([*TRICKY, *late])
