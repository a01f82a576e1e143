"""The conversation methods of ``memory.MemoryMessageStore`` (the contract's reference).

Kept beside the memory store's dicts, which it shares: the store calls ``delivered``
for every inbox row it appends, in the same step (nothing awaited in between), as the
SQL send writer updates ``conversations`` in the inbox rows' transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING

from data_plane.storage.messages.conversation_protocol import (
    UNREAD_COUNT_CAP,
    Conversation,
    ConversationKind,
    ConversationPage,
    HistoryEntry,
    HistoryPage,
    NotTheSender,
    ReadCount,
    ReadResult,
    RecallExpired,
    RecallResult,
    conversation_of,
    preview_of,
)
from data_plane.storage.messages.group_model import Role
from data_plane.storage.messages.protocol import (
    Content,
    Direction,
    IndexEntry,
    StoredMessage,
    UnknownMessage,
)

if TYPE_CHECKING:
    from data_plane.storage.messages.memory import _Inbox
    from data_plane.storage.messages.memory_groups import _Group


@dataclass(slots=True)
class _Conv:
    kind: ConversationKind
    peer: str
    last: IndexEntry
    last_sender: str
    last_type: int
    preview: str
    received: int = 0
    read_seq: int = 0
    read_message_id: int = 0
    read_received: int = 0
    read_group_seq: int = 0

    def public(self) -> Conversation:
        return Conversation(
            kind=self.kind,
            peer=self.peer,
            last_seq=self.last.seq,
            last_message_id=self.last.message_id,
            last_sender=self.last_sender,
            last_time=self.last.send_time,
            last_type=self.last_type,
            preview=self.preview,
            unread=self.received - self.read_received,
            read_message_id=self.read_message_id,
            read_seq=self.read_seq,
        )


ConvKey = tuple[str, str, ConversationKind, str]


class MemoryConversations:
    """Conversations over the memory store's messages, inboxes and groups."""

    def __init__(
        self,
        messages: dict[tuple[str, int], StoredMessage],
        inboxes: dict[tuple[str, str], _Inbox],
        groups: dict[tuple[str, str], _Group],
        now_ms: Callable[[], int],
    ) -> None:
        self._messages = messages
        self._inboxes = inboxes
        self._groups = groups
        self._now_ms = now_ms
        self._convs: dict[ConvKey, _Conv] = {}
        self.hidden: set[tuple[str, str, int]] = set()
        self.recalled: dict[tuple[str, int], int] = {}

    def delivered(
        self, tenant: str, account: str, entry: IndexEntry, type: int, body: bytes
    ) -> None:
        """An inbox row was appended: it is its conversation's last message now."""
        kind, peer = conversation_of(entry)
        # A sent 1:1 row's account_b is the receiver; the list names the sender.
        sent = not entry.group_id and entry.direction == Direction.SENT
        sender = account if sent else entry.account_b
        key = (tenant, account, kind, peer)
        conv = self._convs.get(key)
        if conv is None:
            conv = self._convs[key] = _Conv(kind, peer, entry, sender, type, preview_of(body))
        else:
            conv.last, conv.last_sender = entry, sender
            conv.last_type, conv.preview = type, preview_of(body)
        if entry.direction == Direction.RECEIVED:
            conv.received += 1

    def list_conversations(
        self, tenant: str, account: str, before_seq: int, limit: int
    ) -> ConversationPage:
        """See ``ConversationStore.list_conversations``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        mine = [
            c
            for (t, a, _, _), c in self._convs.items()
            if t == tenant and a == account and (not before_seq or c.last.seq < before_seq)
        ]
        mine.sort(key=lambda c: c.last.seq, reverse=True)
        page = [c.public() for c in mine[: limit + 1]]
        return ConversationPage(page[:limit], has_more=len(page) > limit)

    def get_conversation(
        self, tenant: str, account: str, kind: ConversationKind, peer: str
    ) -> Conversation | None:
        """See ``ConversationStore.get_conversation``."""
        conv = self._convs.get((tenant, account, kind, peer))
        return None if conv is None else conv.public()

    def _rows(
        self, tenant: str, account: str, kind: ConversationKind, peer: str
    ) -> Iterator[IndexEntry]:
        """The conversation's rows in the account's inbox, newest first."""
        inbox = self._inboxes.get((tenant, account))
        for entry in reversed(inbox.entries if inbox is not None else []):
            if conversation_of(entry) == (kind, peer):
                yield entry

    def _row(
        self, tenant: str, account: str, kind: ConversationKind, peer: str, message_id: int
    ) -> IndexEntry:
        inbox = self._inboxes.get((tenant, account))
        seq = inbox.seq_of.get(message_id) if inbox is not None else None
        if inbox is None or seq is None:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        entry = inbox.entries[seq - 1]
        if conversation_of(entry) != (kind, peer):
            raise UnknownMessage(f"message {message_id} is not in this conversation")
        return entry

    def content(self, tenant: str, message_id: int) -> Content:
        """A message's content as reads return it (a tombstone once recalled)."""
        m = self._messages[(tenant, message_id)]
        recalled = (tenant, message_id) in self.recalled
        return Content(m.message_id, m.type, m.body, m.extra, recalled)

    def history(
        self,
        tenant: str,
        account: str,
        kind: ConversationKind,
        peer: str,
        before_message_id: int,
        limit: int,
    ) -> HistoryPage:
        """See ``ConversationStore.history``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        before = (
            self._row(tenant, account, kind, peer, before_message_id).seq
            if before_message_id
            else None
        )
        entries: list[HistoryEntry] = []
        for entry in self._rows(tenant, account, kind, peer):
            if before is not None and entry.seq >= before:
                continue
            if (tenant, account, entry.message_id) in self.hidden:
                continue
            if len(entries) == limit:
                return HistoryPage(entries, has_more=True)
            entries.append(HistoryEntry(entry, self.content(tenant, entry.message_id)))
        return HistoryPage(entries, has_more=False)

    def mark_read(
        self, tenant: str, account: str, kind: ConversationKind, peer: str, message_id: int
    ) -> ReadResult:
        """See ``ConversationStore.mark_read``."""
        entry = self._row(tenant, account, kind, peer, message_id)
        conv = self._convs[(tenant, account, kind, peer)]
        group_seq = self._messages[(tenant, message_id)].group_seq
        if entry.seq <= conv.read_seq:
            return ReadResult(False, conv.public(), group_seq)
        # Received rows among the first UNREAD_COUNT_CAP rows after it, as SQL counts.
        inbox = self._inboxes[(tenant, account)]
        after = scanned = 0
        for row in islice(inbox.entries, entry.seq, None):
            if scanned == UNREAD_COUNT_CAP:
                break
            if conversation_of(row) == (kind, peer):
                scanned += 1
                after += row.direction == Direction.RECEIVED
        conv.read_seq, conv.read_message_id = entry.seq, message_id
        conv.read_received = conv.received - after
        conv.read_group_seq = group_seq
        return ReadResult(True, conv.public(), group_seq)

    def read_count(self, tenant: str, account: str, message_id: int) -> ReadCount:
        """See ``ConversationStore.read_count``."""
        inbox = self._inboxes.get((tenant, account))
        if inbox is None or message_id not in inbox.seq_of:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        m = self._messages[(tenant, message_id)]
        if not m.group_id:
            raise UnknownMessage(f"message {message_id} is not a group message")
        if m.sender != account:
            raise NotTheSender("only the sender sees a message's read count")
        group = self._groups.get((tenant, m.group_id))
        others = [a for a in (group.members if group else {}) if a != account]
        read = 0
        for other in others:
            conv = self._convs.get((tenant, other, ConversationKind.GROUP, m.group_id))
            read += conv is not None and conv.read_group_seq >= m.group_seq
        return ReadCount(read, len(others))

    def recall(self, tenant: str, account: str, message_id: int, sent_after: int) -> RecallResult:
        """See ``ConversationStore.recall``."""
        inbox = self._inboxes.get((tenant, account))
        if inbox is None or message_id not in inbox.seq_of:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        m = self._messages[(tenant, message_id)]
        group = self._groups.get((tenant, m.group_id)) if m.group_id else None
        member = group.members.get(account) if group is not None else None
        manages = (
            group is not None
            and member is not None
            and (group.owner == account or member.role == Role.ADMIN)
        )
        if m.sender != account and not manages:
            raise NotTheSender(
                "only the sender or the group's owner or an admin may recall a message"
            )
        if m.group_id:
            recipients = sorted(group.members) if group else [account]
        else:
            recipients = sorted({m.sender, m.receiver})
        done = self.recalled.get((tenant, message_id))
        if done is not None:
            return RecallResult(m, done, recipients, already=True)
        if m.send_time < sent_after:
            raise RecallExpired(f"message {message_id} is past the recall window")
        tombstone = replace(m, body=b"", extra="")
        self._messages[(tenant, message_id)] = tombstone
        recalled_at = self.recalled[(tenant, message_id)] = max(self._now_ms(), 1)
        for conv in self._convs.values():
            if conv.last.message_id == message_id:
                conv.preview = ""
        return RecallResult(tombstone, recalled_at, recipients, already=False)

    def hide_message(self, tenant: str, account: str, message_id: int) -> bool:
        """See ``ConversationStore.hide_message``."""
        inbox = self._inboxes.get((tenant, account))
        if inbox is None or message_id not in inbox.seq_of:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        key = (tenant, account, message_id)
        hidden = key not in self.hidden
        self.hidden.add(key)
        return hidden
