"""One contract suite for both local stores."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cirno_sdk.models import Direction, Message
from cirno_sdk.store import MemoryStore, SqliteStore, Store
from cirno_sdk.store_sqlite import SCHEMA_VERSION

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
    tombstone = message(6, body="", inbox_seq=4, recalled=True)
    index_only = unloaded(7)
    for m in (original, tombstone, index_only):
        store.add(m)
    assert store.messages() == [original, tombstone, index_only]
    assert store.get(7) == index_only and store.get(8) is None


def unloaded(message_id: int, **changes: Any) -> Message:
    """A message as a lazy sync stores it: index fields only."""
    return message(message_id, type=0, body="", extra="", content_loaded=False, **changes)


def test_fill_loads_a_content_once_in_place(make_store: StoreFactory) -> None:
    store = make_store()
    store.add(unloaded(1))
    store.add(message(2))
    loaded = store.fill(message(1, body="the body", type=3, extra="e"))
    assert loaded == message(1, body="the body", type=3, extra="e")
    assert loaded is not None and loaded.content_loaded
    assert store.fill(message(1, body="another body")) is None  # loaded: never replaced
    assert store.fill(message(2, body="changed")) is None  # stored loaded
    assert store.fill(message(3)) is None  # not stored
    assert [(m.message_id, m.body) for m in store.messages()] == [(1, "the body"), (2, "body 2")]


def test_recall_and_remove(make_store: StoreFactory) -> None:
    store = make_store()
    store.add(message(1))
    store.add(unloaded(2))
    assert store.recall(1) and store.recall(2) and not store.recall(3)
    assert all(m.recalled and m.content_loaded and m.body == "" for m in store.messages())
    assert store.fill(message(2)) is None  # a tombstone stays one
    assert store.remove(1) and not store.remove(1)
    assert [m.message_id for m in store.messages()] == [2]


def test_conversation_is_one_peer_or_group_newest_last(make_store: StoreFactory) -> None:
    store = make_store()
    me = "bob"
    store.add(message(1, sender="alice", to=me))
    store.add(message(2, sender="carol", to=me))
    store.add(message(3, sender=me, to="alice", direction=Direction.SENT))
    store.add(message(4, sender="alice", to="", group="alice"))  # a group named alike
    store.add(unloaded(5, sender="alice", to=me))
    store.add(message(6, sender=me, to="", direction=Direction.SENT))  # receiver unknown
    ids = [m.message_id for m in store.conversation("alice", group=False, limit=10)]
    assert ids == [1, 3, 5]
    assert [m.message_id for m in store.conversation("alice", group=False, limit=2)] == [3, 5]
    assert [m.message_id for m in store.conversation("alice", group=True, limit=9)] == [4]
    assert store.conversation("nobody", group=False, limit=5) == []
    assert store.conversation("", group=False, limit=5) == []


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


_OLD_SCHEMA = """
CREATE TABLE messages (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL UNIQUE,
    sender TEXT NOT NULL,
    receiver TEXT NOT NULL,
    group_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    body TEXT NOT NULL,
    extra TEXT NOT NULL,
    send_time INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    client_msg_id TEXT NOT NULL,
    direction INTEGER NOT NULL
);
CREATE TABLE positions (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO messages VALUES (1, 10, 'alice', 'bob', '', 1, 'hi bob', '', 1010, 0, '', 0);
INSERT INTO messages VALUES (2, 11, 'bob', 'alice', '', 1, 'hi alice', '', 1011, 0, 'c', 1);
INSERT INTO messages VALUES (3, 12, 'eve', '', 'g1', 1, 'hi team', '', 1012, 7, '', 0);
INSERT INTO positions VALUES ('acked_id', 12), ('sync_cursor', 12);
"""


def test_a_file_of_the_previous_sdk_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(_OLD_SCHEMA)
    old.close()
    store = SqliteStore(path)
    assert [(m.message_id, m.body, m.content_loaded) for m in store.messages()] == [
        (10, "hi bob", True),
        (11, "hi alice", True),
        (12, "hi team", True),
    ]
    assert [m.message_id for m in store.conversation("alice", group=False, limit=5)] == [10, 11]
    assert [m.message_id for m in store.conversation("g1", group=True, limit=5)] == [12]
    assert (store.acked_id(), store.sync_cursor()) == (12, 12)
    store.add(unloaded(13, sender="alice", to="bob"))
    store.close()
    again = SqliteStore(path)  # upgraded already: opening again changes nothing
    assert [m.message_id for m in again.conversation("alice", group=False, limit=5)] == [
        10,
        11,
        13,
    ]
    again.close()
    version = sqlite3.connect(path)
    assert version.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    version.close()


def test_a_file_of_a_newer_sdk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteStore(path).close()
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(ValueError, match="newer"):
        SqliteStore(path)
