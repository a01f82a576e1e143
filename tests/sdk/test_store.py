"""One contract suite for both local stores."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cirno_sdk.models import Direction, Message
from cirno_sdk.store import MemoryStore, SqliteStore, Store

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[Store] = []

    def factory() -> Store:
        store: Store = (
            MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def message(message_id: int, **changes: Any) -> Message:
    base = Message(message_id, "alice", "bob", "", 1, f"body {message_id}", "x", 1000 + message_id)
    return dataclasses.replace(base, **changes)


def test_add_is_idempotent_and_keeps_order(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.add(message(30))
    assert store.add(message(10))
    assert not store.add(message(30, body="changed"))
    assert store.contains(10)
    assert not store.contains(20)
    assert [m.message_id for m in store.messages()] == [30, 10]
    assert store.messages()[0].body == "body 30"


def test_every_field_round_trips(make_store: StoreFactory) -> None:
    store = make_store()
    original = message(
        5, group="g1", to="", seq=9, client_msg_id="abc", direction=Direction.SENT, type=2
    )
    store.add(original)
    assert store.messages() == [original]


def test_positions_read_back(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.acked_id() == 0
    assert store.sync_cursor() == 0
    store.set_acked_id(42)
    store.set_sync_cursor(40)
    store.set_acked_id(43)
    assert store.acked_id() == 43
    assert store.sync_cursor() == 40


def test_sqlite_store_survives_a_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "a.db")
    first.add(message(1))
    first.set_sync_cursor(1)
    first.set_acked_id(1)
    first.close()
    second = SqliteStore(tmp_path / "a.db")
    assert second.contains(1)
    assert second.sync_cursor() == 1
    assert second.acked_id() == 1
    second.close()
