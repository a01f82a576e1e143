"""The writers' own connections (``messages.link``): round trips, atomicity, reconnects.

Each writer holds one raw driver connection and sends the statements that return no
rows together with the next one that does, or with COMMIT. These tests pin the round
trips of a small batch, check that a failure in a deferred statement commits nothing,
and that a lost connection is replaced: silently between batches, as a clear
``MessageStoreUnavailable`` while the database is really unreachable.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from sqlalchemy.exc import IntegrityError

from cirno.tcp_proxy import TcpProxy
from data_plane.storage.errors import MessageStoreUnavailable
from data_plane.storage.messages.connections import WriterConnection
from data_plane.storage.messages.items import Send
from data_plane.storage.messages.link import WriterLink
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from tests.storage.test_message_contract import (  # noqa: F401  (fixtures)
    database_url,
    mysql_tables,
    read_all,
    sql_url,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def tenant() -> str:
    return f"w-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def sql_store(sql_url: str) -> AsyncIterator[SqlMessageStore]:  # noqa: F811
    async with open_sql_message_store(sql_url, node_id=31) as opened:
        yield opened


def user(tenant: str, sender: str, receiver: str, client: str | None) -> Send:
    return Send(tenant, sender, receiver, "", 1, b"hi", "", client)


async def test_a_small_batch_takes_two_round_trips(sql_store: SqlMessageStore, tenant: str) -> None:
    link = sql_store.sends.link
    await sql_store.sends.flush([user(tenant, "a", "b", "warm-up")])  # opens the connection
    before = link.round_trips
    await sql_store.sends.flush([user(tenant, "a", "b", "c1")])
    # Contents + counters + read-back; inbox rows + COMMIT. No duplicate lookup.
    assert link.round_trips - before == 2
    before = link.round_trips
    await sql_store.sends.flush([user(tenant, "a", "b", None), user(tenant, "b", "a", None)])
    assert link.round_trips - before == 2
    assert link.connects == 1
    assert [e.seq for e in await read_all(sql_store, tenant, "b")] == [1, 2, 3, 4]


async def test_a_resend_in_a_small_batch_gets_its_original_and_nothing_is_stored_twice(
    sql_store: SqlMessageStore, tenant: str
) -> None:
    old = await sql_store.send_user_message(tenant, "a", "b", 1, b"old", "", "k-old")
    link = sql_store.sends.link
    before = link.round_trips
    batch = [
        user(tenant, "a", "b", "k-new1"),
        user(tenant, "a", "b", "k-old"),  # a resend: the optimistic insert fails
        user(tenant, "a", "b", "k-new1"),  # the same key again in the batch
        user(tenant, "b", "a", "k-new2"),
    ]
    outcomes = await sql_store.sends.flush(batch)
    results = [o[0] for o in outcomes if not isinstance(o, BaseException)]
    assert len(results) == 4
    assert [r.duplicate for r in results] == [False, True, True, False]
    assert results[1].message_id == old.message_id
    assert results[2].message_id == results[0].message_id
    # Failed packet; rollback to the savepoint + lookup; contents again; rows + COMMIT.
    assert link.round_trips - before == 4
    entries = await read_all(sql_store, tenant, "b", device="other")
    assert [e.seq for e in entries] == [1, 2, 3]
    expected = [old.message_id, results[0].message_id, results[3].message_id]
    assert [e.message_id for e in entries] == expected
    contents = await sql_store.get_contents(tenant, "b", [e.message_id for e in entries])
    assert [c.body for c in contents] == [b"old", b"hi", b"hi"]


async def test_batches_above_the_optimistic_size_look_up_first(
    sql_store: SqlMessageStore, tenant: str
) -> None:
    sql_store.send_writes.optimistic_max = 1
    await sql_store.sends.flush([user(tenant, "a", "b", "warm-up")])
    link = sql_store.sends.link
    before = link.round_trips
    outcomes = await sql_store.sends.flush(
        [user(tenant, "a", "b", "x1"), user(tenant, "a", "b", "warm-up")]
    )
    assert link.round_trips - before == 3  # lookup; contents + counters; rows + COMMIT
    assert [o[0].duplicate for o in outcomes if not isinstance(o, BaseException)] == [False, True]


async def test_a_failing_deferred_statement_commits_nothing(sql_url: str, tenant: str) -> None:  # noqa: F811
    link = WriterLink(sql_url)
    mark = "%s" if sql_url.startswith("mysql") else "?"
    insert = f"INSERT INTO inbox_seq (tenant, account, seq) VALUES ({mark}, {mark}, {mark})"

    async def work(conn: WriterConnection, account: str) -> None:
        await conn.execute(insert, (tenant, account, 1))
        await conn.execute(insert, (tenant, account, 2))  # the same key: refused

    async def count(conn: WriterConnection, tenant: str) -> int:
        rows = await conn.query(f"SELECT COUNT(*) FROM inbox_seq WHERE tenant = {mark}", (tenant,))
        return int(rows[0][0])

    try:
        with pytest.raises(IntegrityError):
            await link.transaction(work, "first")
        assert await link.transaction(count, tenant) == 0
        assert link.connects == 1  # a refused statement keeps the connection
    finally:
        await link.aclose()


def _kill_connections_of(mysql_url: str, database: str) -> int:
    """Kill every server connection using ``database``; how many there were."""
    parts = urlsplit(mysql_url)
    admin = pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306, user=parts.username or "root"
    )
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> "
                "CONNECTION_ID()",
                (database,),
            )
            ids = [row[0] for row in cursor.fetchall()]
            for connection_id in ids:
                cursor.execute(f"KILL {int(connection_id)}")
        return len(ids)
    finally:
        admin.close()


@pytest.mark.mysql
async def test_a_connection_killed_between_batches_fails_no_batch(
    mysql_tables: str,  # noqa: F811
    tenant: str,
) -> None:
    async with open_sql_message_store(mysql_tables, node_id=32) as store:
        await store.send_user_message(tenant, "a", "b", 1, b"1", "", "k1")
        [first] = await read_all(store, tenant, "b", device="reader")
        assert await store.ack(tenant, "b", "d", first.message_id)
        database = urlsplit(mysql_tables).path.lstrip("/")
        assert _kill_connections_of(mysql_tables, database) >= 2
        await store.send_user_message(tenant, "a", "b", 1, b"2", "", "k2")
        entries = await read_all(store, tenant, "b", device="reader")
        assert [e.seq for e in entries] == [1, 2]
        assert await store.ack(tenant, "b", "d", entries[1].message_id)
        assert store.sends.link.connects == 2 and store.acks.link.connects == 2


@pytest.mark.mysql
async def test_unreachable_then_back_fails_clearly_then_recovers(
    mysql_tables: str,  # noqa: F811
    tenant: str,
) -> None:
    parts = urlsplit(mysql_tables)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 3306))
    netloc = f"{parts.username or 'root'}@127.0.0.1:{proxy.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    try:
        async with open_sql_message_store(url, node_id=33) as store:
            first = await store.send_user_message(tenant, "a", "b", 1, b"1", "", "u1")
            proxy.cut()
            try:
                with pytest.raises(MessageStoreUnavailable) as failed:
                    await store.send_user_message(tenant, "a", "b", 1, b"2", "", "u2")
                assert failed.value.__cause__ is not None
            finally:
                proxy.restore()
            again = await store.send_user_message(tenant, "a", "b", 1, b"2", "", "u2")
            assert not again.duplicate
            entries = await read_all(store, tenant, "b")
            assert [e.message_id for e in entries] == [first.message_id, again.message_id]
    finally:
        proxy.close()


@pytest.mark.mysql
async def test_writer_init_sets_read_committed_and_concat_length(
    mysql_tables: str,  # noqa: F811
) -> None:
    link = WriterLink(mysql_tables, mysql_init_command="SET SESSION group_concat_max_len = 4096")

    async def settings(conn: WriterConnection, last: str) -> list[tuple[object, ...]]:
        return await conn.query(
            "SELECT VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES WHERE "
            "VARIABLE_NAME IN ('TX_ISOLATION', 'TRANSACTION_ISOLATION', 'GROUP_CONCAT_MAX_LEN') "
            f"ORDER BY VARIABLE_NAME = '{last}'"
        )

    try:
        *isolation, (concat,) = await link.transaction(settings, "GROUP_CONCAT_MAX_LEN")
    finally:
        await link.aclose()
    assert {str(row[0]) for row in isolation} == {"READ-COMMITTED"}
    assert int(str(concat)) == 4096
