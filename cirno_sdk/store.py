"""The client's local message store: messages in delivery order, plus two positions.

- ``acked_id``: the newest message id the server confirmed as read for this device.
- ``sync_cursor``: the id of the last inbox entry offline sync has walked past; the
  next sync pages ``chat.offline.index`` strictly after it (0: after the server's read
  index for this device).

Messages may be stored before their content is (lazy sync: ``Message.content_loaded``
False); :meth:`Store.fill` adds the content later, in place, so a conversation opened
twice fetches each body once.

A store belongs to one (account, device): use one SQLite file per pair. Both stores are
synchronous and fast (a memory dict, or a local SQLite file with small writes), so the
client calls them straight from the event loop.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from cirno_sdk.models import Message
from cirno_sdk.store_sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store"]


class Store(Protocol):
    """Remembers delivered messages (in delivery order) and the two positions.

    Guarantees: :meth:`add` is idempotent per message id (a second add of the same id
    changes nothing and returns False); :meth:`messages` and :meth:`conversation`
    return messages in the order they were first added; :meth:`fill` and
    :meth:`recall` change a stored message in place (its position stays); a loaded
    content is never replaced by :meth:`fill`; the positions read back what was last
    written.
    """

    def add(self, message: Message) -> bool:
        """Remember ``message``; False if its id was already stored."""
        ...

    def contains(self, message_id: int) -> bool:
        """Whether a message with this id is stored (loaded or not)."""
        ...

    def get(self, message_id: int) -> Message | None:
        """The stored message with this id, or None."""
        ...

    def messages(self) -> list[Message]:
        """Every stored message, in the order they were added."""
        ...

    def conversation(self, peer: str, *, group: bool, limit: int) -> list[Message]:
        """The newest ``limit`` stored messages of the conversation with account
        ``peer`` (or of group ``peer``), oldest first, in the order they were added.
        Our own 1:1 messages whose receiver is unknown (``to`` empty) are in none."""
        ...

    def fill(self, message: Message) -> Message | None:
        """Give the stored message of ``message.message_id`` the content of ``message``
        (``type``, ``body``, ``extra``, ``recalled``) if it is stored without one;
        returns the stored message, now loaded, or None (not stored, or loaded
        already: nothing changes)."""
        ...

    def recall(self, message_id: int) -> bool:
        """Make the stored message a tombstone (loaded, ``recalled``, empty body and
        extra); False if it is not stored."""
        ...

    def remove(self, message_id: int) -> bool:
        """Forget a message (the server no longer has it for us: deleted); False if it
        was not stored."""
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

    def get(self, message_id: int) -> Message | None:
        """See :meth:`Store.get`."""
        return self._messages.get(message_id)

    def messages(self) -> list[Message]:
        """See :meth:`Store.messages` (dicts keep insertion order)."""
        return list(self._messages.values())

    def conversation(self, peer: str, *, group: bool, limit: int) -> list[Message]:
        """See :meth:`Store.conversation` (a scan: the memory store is for small use)."""
        if not peer or limit <= 0:
            return []
        found = [m for m in self._messages.values() if m.is_group == group and m.peer == peer]
        return found[-limit:]

    def fill(self, message: Message) -> Message | None:
        """See :meth:`Store.fill` (replacing a dict value keeps its position)."""
        stored = self._messages.get(message.message_id)
        if stored is None or stored.content_loaded:
            return None
        loaded = dataclasses.replace(
            stored,
            type=message.type,
            body=message.body,
            extra=message.extra,
            recalled=message.recalled,
            content_loaded=True,
        )
        self._messages[message.message_id] = loaded
        return loaded

    def recall(self, message_id: int) -> bool:
        """See :meth:`Store.recall`."""
        stored = self._messages.get(message_id)
        if stored is None:
            return False
        self._messages[message_id] = dataclasses.replace(
            stored, body="", extra="", recalled=True, content_loaded=True
        )
        return True

    def remove(self, message_id: int) -> bool:
        """See :meth:`Store.remove`."""
        return self._messages.pop(message_id, None) is not None

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
