"""The client's local message store: messages in delivery order, plus two positions.

- ``acked_id``: the newest message id the server confirmed as read for this device.
- ``sync_cursor``: the id of the last inbox entry offline sync has walked past; the
  next sync pages ``chat.offline.index`` strictly after it (0: after the server's read
  index for this device).

A store belongs to one (account, device): use one SQLite file per pair. Both stores are
synchronous and fast (a memory dict, or a local SQLite file with small writes), so the
client calls them straight from the event loop.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol

from cirno_sdk.models import Direction, Message


class Store(Protocol):
    """Remembers delivered messages (in delivery order) and the two positions.

    Guarantees: :meth:`add` is idempotent per message id (a second add of the same id
    changes nothing and returns False); :meth:`messages` returns messages in the order
    they were first added; the positions read back what was last written.
    """

    def add(self, message: Message) -> bool:
        """Remember ``message``; False if its id was already stored."""
        ...

    def contains(self, message_id: int) -> bool:
        """Whether a message with this id is stored."""
        ...

    def messages(self) -> list[Message]:
        """Every stored message, in the order they were added."""
        ...

    def acked_id(self) -> int:
        """The newest acknowledged message id (0: none)."""
        ...

    def set_acked_id(self, message_id: int) -> None:
        """Record that the server acknowledged ``message_id``."""
        ...

    def sync_cursor(self) -> int:
        """Where the next offline sync starts (exclusive; 0: the server's read index)."""
        ...

    def set_sync_cursor(self, message_id: int) -> None:
        """Record how far offline sync has walked."""
        ...

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...


class MemoryStore:
    """A :class:`Store` in memory (the default): gone when the process ends."""

    def __init__(self) -> None:
        self._messages: dict[int, Message] = {}
        self._acked = 0
        self._cursor = 0

    def add(self, message: Message) -> bool:
        """See :meth:`Store.add`."""
        if message.message_id in self._messages:
            return False
        self._messages[message.message_id] = message
        return True

    def contains(self, message_id: int) -> bool:
        """See :meth:`Store.contains`."""
        return message_id in self._messages

    def messages(self) -> list[Message]:
        """See :meth:`Store.messages` (dicts keep insertion order)."""
        return list(self._messages.values())

    def acked_id(self) -> int:
        """See :meth:`Store.acked_id`."""
        return self._acked

    def set_acked_id(self, message_id: int) -> None:
        """See :meth:`Store.set_acked_id`."""
        self._acked = message_id

    def sync_cursor(self) -> int:
        """See :meth:`Store.sync_cursor`."""
        return self._cursor

    def set_sync_cursor(self, message_id: int) -> None:
        """See :meth:`Store.set_sync_cursor`."""
        self._cursor = message_id

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
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
CREATE TABLE IF NOT EXISTS positions (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
_COLUMNS = (
    "message_id, sender, receiver, group_id, type, body, extra, send_time, seq, "
    "client_msg_id, direction"
)


class SqliteStore:
    """A :class:`Store` in a SQLite file (stdlib ``sqlite3``), surviving restarts.

    Every write commits at once (WAL, ``synchronous=NORMAL``): a client writes a few
    small rows per message, far below what SQLite does per second.
    """

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def add(self, message: Message) -> bool:
        """See :meth:`Store.add`."""
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.message_id,
                message.sender,
                message.to,
                message.group,
                message.type,
                message.body,
                message.extra,
                message.send_time,
                message.seq,
                message.client_msg_id,
                int(message.direction),
            ),
        )
        return cursor.rowcount == 1

    def contains(self, message_id: int) -> bool:
        """See :meth:`Store.contains`."""
        row = self._db.execute("SELECT 1 FROM messages WHERE message_id = ?", (message_id,))
        return row.fetchone() is not None

    def messages(self) -> list[Message]:
        """See :meth:`Store.messages`."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY pos")
        return [
            Message(
                message_id=row[0],
                sender=row[1],
                to=row[2],
                group=row[3],
                type=row[4],
                body=row[5],
                extra=row[6],
                send_time=row[7],
                seq=row[8],
                client_msg_id=row[9],
                direction=Direction(row[10]),
            )
            for row in rows
        ]

    def _position(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM positions WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set_position(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO positions (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def acked_id(self) -> int:
        """See :meth:`Store.acked_id`."""
        return self._position("acked_id")

    def set_acked_id(self, message_id: int) -> None:
        """See :meth:`Store.set_acked_id`."""
        self._set_position("acked_id", message_id)

    def sync_cursor(self) -> int:
        """See :meth:`Store.sync_cursor`."""
        return self._position("sync_cursor")

    def set_sync_cursor(self, message_id: int) -> None:
        """See :meth:`Store.set_sync_cursor`."""
        self._set_position("sync_cursor", message_id)

    def close(self) -> None:
        """Close the database."""
        self._db.close()
