"""Coalesced inbox heads (``storage/messages/heads.py``), on SQLite and MySQL.

Concurrent ``inbox_heads`` calls share round trips, each caller gets its own accounts'
heads, and a head is read after the call was made (a row committed before it is seen).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest

from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from tests.storage.test_message_contract import (  # noqa: F401  (fixtures)
    mysql_tables,
    send,
    sql_url,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(sql_url: str) -> AsyncIterator[SqlMessageStore]:  # noqa: F811
    async with open_sql_message_store(sql_url, node_id=1) as opened:
        yield opened


async def test_concurrent_heads_share_round_trips(store: SqlMessageStore) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    for n in range(3):
        await send(store, tenant, "bob", f"u{n}", "hi")
    await send(store, tenant, "bob", "u1", "again")
    other = f"t-{uuid.uuid4().hex[:12]}"
    await send(store, other, "bob", "u1", "elsewhere")
    got: dict[tuple[str, str], dict[str, int]] = {}

    async def one(tenant: str, account: str) -> None:
        got[tenant, account] = await store.inbox_heads(tenant, [account, "nobody"])

    before = store.head_reads
    async with anyio.create_task_group() as tg:
        for n in range(100):
            tg.start_soon(one, tenant if n % 2 else other, f"u{n % 4}")
    assert got[tenant, "u1"] == {"u1": 2, "nobody": 0}
    assert got[tenant, "u3"] == {"u3": 0, "nobody": 0}
    assert got[other, "u0"] == {"u0": 0, "nobody": 0}
    assert got[other, "u2"] == {"u2": 0, "nobody": 0}
    assert store.head_reads - before < 10  # 100 calls, a few round trips
    assert await store.inbox_heads(tenant, []) == {}


async def test_a_head_is_read_after_the_call(store: SqlMessageStore) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    for expected in range(1, 4):
        await send(store, tenant, "bob", "alice", "hi")
        assert await store.inbox_heads(tenant, ["alice"]) == {"alice": expected}
