"""Lazy contents (the seed's sync): index pages at login, bodies when a conversation opens.

Real ``cirno up`` processes and the real SDK; every request the client makes is counted
on its link, so the tests show what went over the wire, not what the SDK says it did.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cirno.harness import Cluster
from cirno_sdk import Client, ClientOptions, SqliteStore
from cirno_sdk.store import Store
from data_plane.logic.handlers.sync import INDEX_PAGE_SIZE
from data_plane.wire import Command, pb
from tests.sdk.conftest import tcp_url, token
from tests.sdk.test_client_e2e import client, eventually, name, nothing_more, receive

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

LAZY = ClientOptions(content_batch=64, ack_interval=100, pull_interval=0, backoff_initial=0.05)


class Wire:
    """The requests a client sent: commands, and the ids of each content request."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.content_ids: list[list[int]] = []

    def count(self, command: str) -> int:
        return self.commands.count(command)


@asynccontextmanager
async def counted(
    url: str, account: str, *, device: str = "default", store: Store | None = None
) -> AsyncIterator[tuple[Client, Wire]]:
    """A lazy client whose every request (from login on) is recorded."""
    c = Client(url, token(account), device=device, options=LAZY, store=store)
    wire = Wire()
    original = c._link.request

    async def recording(transport: Any, command: str, body: Any, **kw: Any) -> Any:
        wire.commands.append(command)
        if command == Command.CHAT_OFFLINE_CONTENT:
            assert isinstance(body, pb.MessageContentReq)
            wire.content_ids.append(list(body.message_ids))
        return await original(transport, command, body, **kw)

    c._link.request = recording  # type: ignore[method-assign]
    async with c:
        yield c, wire


async def test_a_long_offline_inbox_syncs_index_pages_and_opens_one_conversation(
    cluster: Cluster,
) -> None:
    alice, dave, carol = name("alice"), name("dave"), name("carol")
    from_alice, from_dave = INDEX_PAGE_SIZE + 100, 50
    async with client(cluster.ws_url, alice) as a, client(tcp_url(cluster), dave) as d:
        for start in range(0, from_alice, 100):
            await asyncio.gather(*(a.send(carol, f"a{i}") for i in range(start, start + 100)))
        dave_sent = [(await d.send(carol, f"d{i}")).message_id for i in range(from_dave)]
    total = from_alice + from_dave
    async with counted(cluster.ws_url, carol) as (c, wire):
        got = await receive(c, total, timeout=60)
        await nothing_more(c)
        # ceil(N / page) index requests, not one content request, nothing loaded yet.
        assert wire.count(Command.CHAT_OFFLINE_INDEX) == math.ceil(total / INDEX_PAGE_SIZE)
        assert wire.count(Command.CHAT_OFFLINE_CONTENT) == 0
        assert not any(m.content_loaded or m.body for m in got)
        assert {m.sender for m in got} == {alice, dave}
        # Acks cover stored indexes: the read index moves without a single body.
        await eventually(lambda: c.store.acked_id() == got[-1].message_id, timeout=10)

        opened = await c.open_conversation(dave, limit=100)
        assert [m.message_id for m in opened] == dave_sent
        assert [m.body for m in opened] == [f"d{i}" for i in range(from_dave)]
        assert wire.content_ids == [dave_sent]  # only that conversation's, in one batch
        assert await c.open_conversation(dave, limit=100) == opened  # cached: no refetch
        assert wire.count(Command.CHAT_OFFLINE_CONTENT) == 1

        alice_ids = [m.message_id for m in got if m.sender == alice]
        newest = await c.open_conversation(alice, limit=from_alice)
        assert [m.message_id for m in newest] == alice_ids
        assert {m.body for m in newest} == {f"a{i}" for i in range(from_alice)}
        fetched = wire.content_ids[1:]
        assert len(fetched) == math.ceil(from_alice / LAZY.content_batch)
        assert all(len(ids) <= LAZY.content_batch for ids in fetched)
        assert [i for ids in fetched for i in ids] == alice_ids
        assert all(m.content_loaded for m in c.store.messages())


async def test_tombstones_deleted_messages_and_a_cache_that_survives_a_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice, bob = name("alice"), name("bob")
    async with client(cluster.ws_url, alice) as a:
        sent = [(await a.send(bob, f"m{i}")).message_id for i in range(3)]
        await a.recall(sent[1])
        store = SqliteStore(tmp_path / "bob.db")
        async with counted(tcp_url(cluster), bob, device="phone", store=store) as (phone, wire):
            got = await receive(phone, 3)
            assert [(m.message_id, m.content_loaded) for m in got] == [(i, False) for i in sent]
            async with client(cluster.ws_url, bob, device="laptop") as laptop:
                await laptop.delete(sent[2])  # gone for bob after the phone synced its index
            opened = await phone.open_conversation(alice)
            assert [(m.body, m.recalled) for m in opened] == [("m0", False), ("", True)]
            assert not store.contains(sent[2])
            assert wire.count(Command.CHAT_OFFLINE_CONTENT) > 1  # the 404 batch was split
        store.close()
        store = SqliteStore(tmp_path / "bob.db")
        async with counted(tcp_url(cluster), bob, device="phone", store=store) as (again, wire):
            assert await again.open_conversation(alice) == opened
            live = await a.send(bob, "live")
            (pushed,) = await receive(again, 1)
            assert (pushed.body, pushed.content_loaded) == ("live", True)
            reopened = await again.open_conversation(alice)
            assert [m.body for m in reopened] == ["m0", "", "live"]
            assert reopened[-1].message_id == live.message_id
            assert wire.count(Command.CHAT_OFFLINE_CONTENT) == 0  # all from the file
        store.close()


async def test_eager_option_fetches_contents_during_sync(cluster: Cluster) -> None:
    alice, erin = name("alice"), name("erin")
    async with client(cluster.ws_url, alice) as a:
        sent = [(await a.send(erin, f"e{i}")).message_id for i in range(10)]
    eager = ClientOptions(content="eager", content_batch=4, pull_interval=0)
    async with client(tcp_url(cluster), erin, options=eager) as e:
        got = await receive(e, 10)
        assert [(m.message_id, m.body) for m in got] == [(i, f"e{n}") for n, i in enumerate(sent)]
        assert all(m.content_loaded for m in got)
        assert await e.open_conversation(alice) == got


def test_options_refuse_an_unknown_content_mode() -> None:
    with pytest.raises(ValueError, match="lazy"):
        ClientOptions(content="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="content_batch"):
        ClientOptions(content_batch=201)
