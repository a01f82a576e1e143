"""The SQLite implementation of :class:`~cirno_sdk.store.Store`, and its schema upgrades.

The schema carries a version in ``PRAGMA user_version``. A file of an older SDK is
upgraded in place when opened, in one transaction (two clients opening the same old
file at once: the second finds it upgraded):

- version 0 (SDK 0.1, no version set): ``messages`` without a content flag;
- version 1: ``content_loaded`` (lazy sync), ``recalled`` and ``inbox_seq`` columns,
  and ``conversation`` (``u:<peer>`` or ``g:<group>``) with an index, so opening a
  conversation reads its newest rows without a scan. Rows of version 0 were stored
  with their contents: they read as loaded.

A file of a newer schema than this SDK knows is refused (``ValueError``) rather than
misread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cirno_sdk.models import Direction, Message

SCHEMA_VERSION = 1

_SCHEMA_0 = """
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
_UPGRADES: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE messages ADD COLUMN content_loaded INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN inbox_seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN conversation TEXT NOT NULL DEFAULT ''",
        "UPDATE messages SET conversation = CASE"
        " WHEN group_id != '' THEN 'g:' || group_id"
        " WHEN direction = 1 THEN (CASE WHEN receiver = '' THEN '' ELSE 'u:' || receiver END)"
        " ELSE 'u:' || sender END",
        "CREATE INDEX messages_conversation ON messages (conversation, pos)",
    ),
}
"""Statements that take a file from the version before to the key's version."""

_COLUMNS = (
    "message_id, sender, receiver, group_id, type, body, extra, send_time, seq, "
    "client_msg_id, direction, inbox_seq, recalled, content_loaded"
)


def conversation_key(peer: str, *, group: bool) -> str:
    """The ``conversation`` column of a message of this conversation ("" for none)."""
    if not peer:
        return ""
    return f"g:{peer}" if group else f"u:{peer}"


def _row_message(row: Any) -> Message:
    return Message(
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
        inbox_seq=row[11],
        recalled=bool(row[12]),
        content_loaded=bool(row[13]),
    )


def upgrade(db: sqlite3.Connection) -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; returns the version it had."""
    db.executescript(_SCHEMA_0)
    db.execute("BEGIN IMMEDIATE")
    try:
        found = int(db.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise ValueError(f"store schema {found} is newer than this SDK's ({SCHEMA_VERSION})")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _UPGRADES[version]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return found


class SqliteStore:
    """A :class:`~cirno_sdk.store.Store` in a SQLite file (stdlib ``sqlite3``),
    surviving restarts; older files are upgraded when opened (see the module).

    Every write commits at once (WAL, ``synchronous=NORMAL``): a client writes a few
    small rows per message, far below what SQLite does per second.
    """

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            upgrade(self._db)
        except BaseException:
            self._db.close()
            raise

    def add(self, message: Message) -> bool:
        """See :meth:`Store.add`."""
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO messages ({_COLUMNS}, conversation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                message.inbox_seq,
                int(message.recalled),
                int(message.content_loaded),
                conversation_key(message.peer, group=message.is_group),
            ),
        )
        return cursor.rowcount == 1

    def contains(self, message_id: int) -> bool:
        """See :meth:`Store.contains`."""
        row = self._db.execute("SELECT 1 FROM messages WHERE message_id = ?", (message_id,))
        return row.fetchone() is not None

    def get(self, message_id: int) -> Message | None:
        """See :meth:`Store.get`."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        return None if row is None else _row_message(row)

    def messages(self) -> list[Message]:
        """See :meth:`Store.messages`."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY pos")
        return [_row_message(row) for row in rows]

    def conversation(self, peer: str, *, group: bool, limit: int) -> list[Message]:
        """See :meth:`Store.conversation` (the conversation index, newest first)."""
        key = conversation_key(peer, group=group)
        if not key or limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation = ? ORDER BY pos DESC LIMIT ?",
            (key, limit),
        ).fetchall()
        return [_row_message(row) for row in reversed(rows)]

    def fill(self, message: Message) -> Message | None:
        """See :meth:`Store.fill`."""
        cursor = self._db.execute(
            "UPDATE messages SET type = ?, body = ?, extra = ?, recalled = ?, "
            "content_loaded = 1 WHERE message_id = ? AND content_loaded = 0",
            (message.type, message.body, message.extra, int(message.recalled), message.message_id),
        )
        return self.get(message.message_id) if cursor.rowcount == 1 else None

    def recall(self, message_id: int) -> bool:
        """See :meth:`Store.recall`."""
        cursor = self._db.execute(
            "UPDATE messages SET body = '', extra = '', recalled = 1, content_loaded = 1 "
            "WHERE message_id = ?",
            (message_id,),
        )
        return cursor.rowcount == 1

    def remove(self, message_id: int) -> bool:
        """See :meth:`Store.remove`."""
        cursor = self._db.execute("DELETE FROM messages WHERE message_id = ?", (message_id,))
        return cursor.rowcount == 1

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
