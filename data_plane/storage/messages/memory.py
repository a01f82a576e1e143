"""In-memory ``MessageStore``: the reference behaviour of the contract, no durability.

Every operation mutates plain dicts without awaiting in between, so each one is atomic
on the event loop, then yields once (as a database round trip would) before returning.
Used by tests and by a logic node started without a database URL. The group methods are
``memory_groups.MemoryGroups``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

import anyio.lowlevel

from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.conversation_protocol import (
    Conversation,
    ConversationKind,
    ConversationPage,
    HistoryPage,
    ReadCount,
    ReadResult,
    RecallResult,
)
from data_plane.storage.messages.memory_conversations import MemoryConversations
from data_plane.storage.messages.memory_groups import MemoryGroups, _Group
from data_plane.storage.messages.protocol import (
    Content,
    Direction,
    InboxMessage,
    IndexEntry,
    IndexPage,
    NotAMember,
    SendResult,
    StoredMessage,
    UnknownMessage,
    check_device,
    check_id,
    check_message,
    first_occurrences,
)


@dataclass(slots=True)
class _Inbox:
    entries: list[IndexEntry] = field(default_factory=list)
    seq_of: dict[int, int] = field(default_factory=dict)

    def append(
        self, message_id: int, direction: Direction, send_time: int, account_b: str, group: str
    ) -> IndexEntry:
        seq = len(self.entries) + 1
        entry = IndexEntry(message_id, direction, send_time, account_b, group, seq)
        self.entries.append(entry)
        self.seq_of[message_id] = seq
        return entry


class MemoryMessageStore(MemoryGroups):
    """A ``MessageStore`` kept in process memory (lost on exit)."""

    def __init__(self, *, node_id: int = 0, ids: SnowflakeIds | None = None) -> None:
        self._ids = ids if ids is not None else SnowflakeIds(node_id)
        self._messages: dict[tuple[str, int], StoredMessage] = {}
        self._client_ids: dict[tuple[str, str, str], int] = {}
        self._inboxes: dict[tuple[str, str], _Inbox] = {}
        self._read: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._conversations = MemoryConversations(
            self._messages, self._inboxes, self._groups, self._ids.now_ms
        )
        self._closed = False

    def _deliver(
        self,
        tenant: str,
        account: str,
        m: StoredMessage,
        direction: Direction,
        account_b: str,
    ) -> int:
        """Append the inbox row and update its conversation, in one step; the row's
        inbox sequence."""
        entry = self._inbox(tenant, account).append(
            m.message_id, direction, m.send_time, account_b, m.group_id
        )
        self._conversations.delivered(tenant, account, entry, m.type, m.body)
        return entry.seq

    def _inbox(self, tenant: str, account: str) -> _Inbox:
        inbox = self._inboxes.get((tenant, account))
        if inbox is None:
            inbox = self._inboxes[(tenant, account)] = _Inbox()
        return inbox

    def _original(self, tenant: str, sender: str, client_msg_id: str | None) -> SendResult | None:
        if client_msg_id is None:
            return None
        message_id = self._client_ids.get((tenant, sender, client_msg_id))
        if message_id is None:
            return None
        stored = self._messages[(tenant, message_id)]
        return SendResult(message_id, stored.send_time, duplicate=True, seq=stored.group_seq)

    def _store(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        group_id: str,
        group_seq: int,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> StoredMessage:
        message_id = self._ids.next_id()
        stored = StoredMessage(
            message_id=message_id,
            sender=sender,
            receiver=receiver,
            group_id=group_id,
            group_seq=group_seq,
            type=type,
            body=bytes(body),
            extra=extra,
            client_msg_id=client_msg_id,
            send_time=SnowflakeIds.time_of(message_id),
        )
        self._messages[(tenant, message_id)] = stored
        if client_msg_id is not None:
            self._client_ids[(tenant, sender, client_msg_id)] = message_id
        return stored

    async def send_user_message(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> SendResult:
        """See ``MessageStore.send_user_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("receiver", receiver)
        self._check_open()
        result = self._original(tenant, sender, client_msg_id)
        if result is None:
            m = self._store(tenant, sender, receiver, "", 0, type, body, extra, client_msg_id)
            if receiver != sender:
                self._deliver(tenant, receiver, m, Direction.RECEIVED, sender)
            self._deliver(tenant, sender, m, Direction.SENT, receiver)
            own = self._inbox(tenant, sender)
            receiver_seq = self._inbox(tenant, receiver).seq_of[m.message_id]
            result = SendResult(
                m.message_id,
                m.send_time,
                duplicate=False,
                seq=0,
                inbox_seq=own.seq_of[m.message_id],
                receiver_inbox_seq=receiver_seq,
            )
        await anyio.lowlevel.checkpoint()
        return result

    async def send_group_message(
        self,
        tenant: str,
        sender: str,
        group_id: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> tuple[SendResult, list[str]]:
        """See ``MessageStore.send_group_message``."""
        check_message(tenant, sender, type, body, extra, client_msg_id)
        check_id("group_id", group_id)
        self._check_open()
        original = self._original(tenant, sender, client_msg_id)
        if original is not None:
            await anyio.lowlevel.checkpoint()
            return original, []
        group = self._group(tenant, group_id)
        if sender not in group.members and sender != SYSTEM_SENDER:
            raise NotAMember(f"{sender!r} is not a member of group {group_id!r}")
        group.seq += 1
        seq = group.seq
        m = self._store(tenant, sender, "", group_id, seq, type, body, extra, client_msg_id)
        receivers = [member.account for member in group.sorted_members()]
        seqs: list[int] = []
        for account in receivers:
            direction = Direction.SENT if account == sender else Direction.RECEIVED
            seqs.append(self._deliver(tenant, account, m, direction, sender))
        await anyio.lowlevel.checkpoint()
        own = seqs[receivers.index(sender)] if sender in receivers else 0
        result = SendResult(m.message_id, m.send_time, False, seq, own, 0, tuple(seqs))
        return result, receivers

    async def ack(self, tenant: str, account: str, device: str, message_id: int) -> bool:
        """See ``MessageStore.ack``."""
        check_device(device)
        self._check_open()
        inbox = self._inboxes.get((tenant, account))
        seq = inbox.seq_of.get(message_id) if inbox is not None else None
        if seq is None:
            raise UnknownMessage(f"message {message_id} is not in the inbox of {account!r}")
        current = self._read.get((tenant, account, device))
        moved = current is None or seq > current[1]
        if moved:
            self._read[(tenant, account, device)] = (message_id, seq)
        await anyio.lowlevel.checkpoint()
        return moved

    async def list_index(
        self, tenant: str, account: str, device: str, after_message_id: int, limit: int
    ) -> IndexPage:
        """See ``MessageStore.list_index``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._check_open()
        inbox = self._inboxes.get((tenant, account), _Inbox())
        if after_message_id:
            after = inbox.seq_of.get(after_message_id)
            if after is None:
                raise UnknownMessage(
                    f"message {after_message_id} is not in the inbox of {account!r}"
                )
        else:
            after = self._read.get((tenant, account, device), (0, 0))[1]
        # seq n sits at list position n - 1, so the rows after seq ``after`` start there.
        hidden = self._conversations.hidden
        entries = []
        for entry in islice(inbox.entries, after, None):
            if (tenant, account, entry.message_id) not in hidden:
                entries.append(entry)
                if len(entries) > limit:
                    break
        await anyio.lowlevel.checkpoint()
        return IndexPage(entries[:limit], has_more=len(entries) > limit)

    async def is_sent(self, tenant: str, sender: str, client_msg_id: str) -> bool:
        """See ``MessageStore.is_sent``."""
        return (tenant, sender, client_msg_id) in self._client_ids

    async def inbox_heads(self, tenant: str, accounts: Sequence[str]) -> dict[str, int]:
        """See ``MessageStore.inbox_heads``."""
        self._check_open()
        heads = {}
        for account in accounts:
            inbox = self._inboxes.get((tenant, account))
            heads[account] = len(inbox.entries) if inbox is not None else 0
        await anyio.lowlevel.checkpoint()
        return heads

    async def read_inbox(
        self, tenant: str, account: str, after_seq: int, limit: int
    ) -> list[InboxMessage]:
        """See ``MessageStore.read_inbox``."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._check_open()
        inbox = self._inboxes.get((tenant, account), _Inbox())
        rows = []
        for entry in inbox.entries[max(0, after_seq) : max(0, after_seq) + limit]:
            m = self._messages[(tenant, entry.message_id)]
            rows.append(
                InboxMessage(
                    entry.seq,
                    entry.message_id,
                    entry.direction,
                    entry.account_b,
                    entry.group_id,
                    m.group_seq,
                    entry.send_time,
                    m.type,
                    m.body,
                    m.extra,
                    m.client_msg_id or "",
                )
            )
        await anyio.lowlevel.checkpoint()
        return rows

    async def get_contents(
        self, tenant: str, account: str, message_ids: Sequence[int]
    ) -> list[Content]:
        """See ``MessageStore.get_contents``."""
        self._check_open()
        inbox = self._inboxes.get((tenant, account), _Inbox())
        contents = []
        for message_id in first_occurrences(message_ids):
            hidden = (tenant, account, message_id) in self._conversations.hidden
            if message_id in inbox.seq_of and not hidden:
                contents.append(self._conversations.content(tenant, message_id))
        await anyio.lowlevel.checkpoint()
        return contents

    # -- conversations (``conversation_protocol``; done in ``memory_conversations``) ----

    async def list_conversations(
        self, tenant: str, account: str, before_seq: int, limit: int
    ) -> ConversationPage:
        """See ``ConversationStore.list_conversations``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.list_conversations(tenant, account, before_seq, limit)

    async def get_conversation(
        self, tenant: str, account: str, kind: ConversationKind, peer: str
    ) -> Conversation | None:
        """See ``ConversationStore.get_conversation``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.get_conversation(tenant, account, kind, peer)

    async def history(
        self,
        tenant: str,
        account: str,
        kind: ConversationKind,
        peer: str,
        before_message_id: int,
        limit: int,
    ) -> HistoryPage:
        """See ``ConversationStore.history``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.history(tenant, account, kind, peer, before_message_id, limit)

    async def mark_read(
        self, tenant: str, account: str, kind: ConversationKind, peer: str, message_id: int
    ) -> ReadResult:
        """See ``ConversationStore.mark_read``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.mark_read(tenant, account, kind, peer, message_id)

    async def read_count(self, tenant: str, account: str, message_id: int) -> ReadCount:
        """See ``ConversationStore.read_count``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.read_count(tenant, account, message_id)

    async def recall(
        self, tenant: str, account: str, message_id: int, sent_after: int
    ) -> RecallResult:
        """See ``ConversationStore.recall``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.recall(tenant, account, message_id, sent_after)

    async def hide_message(self, tenant: str, account: str, message_id: int) -> bool:
        """See ``ConversationStore.hide_message``."""
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._conversations.hide_message(tenant, account, message_id)

    async def aclose(self) -> None:
        """Refuse further operations (the data stays in memory until collected)."""
        self._closed = True
