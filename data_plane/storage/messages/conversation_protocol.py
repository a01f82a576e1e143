"""Conversations in the message store: the list, history, read positions, recall, delete.

Theory of operation:

- A *conversation* of an account is a 1:1 peer (``ConversationKind.USER``, ``peer`` is
  the other account; a message to oneself is the conversation with oneself) or a group
  (``GROUP``, ``peer`` is the group id). Its messages are the account's inbox rows with
  that peer or group, in inbox order.
- The conversation list is a table written by the send path in the same transaction as
  the inbox rows: one row per (account, conversation) holding the last message and
  ``received``, how many messages from others the conversation ever got. Listing reads
  that table alone (one index range, newest activity first), never the inbox.
- **Unread, precisely**: the messages of the conversation that other accounts sent
  (inbox rows ``RECEIVED``) after the account's read position. A read on any device of
  the account moves the one read position of the account, so every device of the
  account shows the same count, and a message the account sent from any of its devices
  is never unread. The count is ``received - read_received``: a read stores the value
  ``received`` had up to the read message, found by counting the conversation's
  received rows after it (at most ``UNREAD_COUNT_CAP`` index entries; a read that leaves
  more unread than that stores the cap). Reading, listing and sending never scan more.
- Read positions only move forward (by inbox sequence). A group read position also
  records the read message's group sequence, so a sender's read count of a group
  message compares members' positions: one primary-key lookup per member.
- Recall turns the stored content into a tombstone (body and extra emptied,
  ``recalled_at`` set) and every read returns the tombstone from then on. Delete hides a
  message from one account's reads (sync index, contents, history), nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from data_plane.storage.errors import StorageError
from data_plane.storage.messages.schema import PREVIEW_LENGTH

if TYPE_CHECKING:  # ``protocol``'s MessageStore includes this module's ConversationStore
    from data_plane.storage.messages.protocol import Content, IndexEntry, StoredMessage

UNREAD_COUNT_CAP = 1000
"""Most received rows a read counts to find what stays unread (its bounded cost)."""


class NotTheSender(StorageError):
    """Only the message's sender may do this (recall, read counts)."""


class RecallExpired(StorageError):
    """The message is older than the recall window."""


class ConversationKind(enum.IntEnum):
    """A conversation with one peer account, or a group's."""

    USER = 0
    GROUP = 1


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation of an account, as the list shows it.

    ``last_*`` describe the newest message (``last_seq`` its inbox sequence);
    ``preview`` is the start of its body ('' once recalled). ``unread`` is defined in
    the module docstring; ``read_message_id`` / ``read_seq`` are the account's read
    position (0: never read).
    """

    kind: ConversationKind
    peer: str
    last_seq: int
    last_message_id: int
    last_sender: str
    last_time: int
    last_type: int
    preview: str
    unread: int
    read_message_id: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """Conversations by newest activity first; ``has_more`` when older ones follow."""

    conversations: list[Conversation]
    has_more: bool


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A message of a conversation: its inbox row and its content (maybe a tombstone)."""

    entry: IndexEntry
    content: Content


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Messages newest first; ``has_more`` when older ones follow."""

    entries: list[HistoryEntry]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of ``mark_read``: whether the position moved, and the conversation
    after it. ``group_seq`` is the read message's group sequence (0 for 1:1)."""

    moved: bool
    conversation: Conversation
    group_seq: int


@dataclass(frozen=True, slots=True)
class ReadCount:
    """How many of a group message's other members have read it, of how many."""

    read: int
    members: int


@dataclass(frozen=True, slots=True)
class RecallResult:
    """A recalled message (now a tombstone) and the accounts to tell.

    ``recipients``: both parties of a 1:1 message, the group's current members for a
    group message (a member who left since gets the tombstone by sync). ``already``
    when the message had been recalled before (nothing changed).
    """

    message: StoredMessage
    recalled_at: int
    recipients: list[str]
    already: bool


def preview_of(body: bytes) -> str:
    """The conversation list's preview of ``body``: its first characters as UTF-8."""
    return body[: PREVIEW_LENGTH * 4].decode("utf-8", "replace")[:PREVIEW_LENGTH]


def conversation_of(entry: IndexEntry) -> tuple[ConversationKind, str]:
    """The conversation an inbox row belongs to, from its owner's view."""
    if entry.group_id:
        return ConversationKind.GROUP, entry.group_id
    return ConversationKind.USER, entry.account_b


class ConversationStore(Protocol):
    """The conversation methods of a ``MessageStore`` (see the module docstring).

    Every method is scoped by tenant and by the calling account's own inbox.
    """

    async def list_conversations(
        self, tenant: str, account: str, before_seq: int, limit: int
    ) -> ConversationPage:
        """Conversations whose last message's inbox sequence is below ``before_seq``
        (0: from the newest), newest first, at most ``limit`` (``ValueError`` if < 1).

        Page on with the last conversation's ``last_seq``. A conversation that gets a
        message between two pages moves to the front and may be met again or skipped on
        later pages: restart from 0 to see the current order.
        """
        ...

    async def get_conversation(
        self, tenant: str, account: str, kind: ConversationKind, peer: str
    ) -> Conversation | None:
        """One conversation of the account (None when it has no message yet)."""
        ...

    async def history(
        self,
        tenant: str,
        account: str,
        kind: ConversationKind,
        peer: str,
        before_message_id: int,
        limit: int,
    ) -> HistoryPage:
        """The conversation's messages before ``before_message_id`` (0: from the
        newest), newest first by message id, at most ``limit``, with their contents.
        (On one logic node message-id order is inbox order; messages sent through two
        nodes within their clocks' skew may come in the other order.)

        Only the account's own inbox rows, without those it deleted; recalled messages
        come as tombstones. Paging with the last entry's message id until
        ``has_more`` is false visits every message once. Raises ``UnknownMessage`` for a
        non-zero id that is not a message of this conversation in the account's inbox,
        ``ValueError`` for ``limit < 1``.
        """
        ...

    async def mark_read(
        self, tenant: str, account: str, kind: ConversationKind, peer: str, message_id: int
    ) -> ReadResult:
        """Move the account's read position in the conversation to ``message_id`` if
        that is forward (by inbox sequence); see the module docstring for the unread
        count it leaves. Raises ``UnknownMessage`` when the message is not one of the
        conversation's in the account's inbox.
        """
        ...

    async def read_count(self, tenant: str, account: str, message_id: int) -> ReadCount:
        """How many of the group's current members other than ``account`` (the
        sender) have read the group message ``message_id``.

        Costs one primary-key lookup per member. Raises ``UnknownMessage`` (not in the
        account's inbox, or not a group message), ``NotTheSender``.
        """
        ...

    async def recall(
        self, tenant: str, account: str, message_id: int, sent_after: int
    ) -> RecallResult:
        """Turn the message into a tombstone if ``account`` sent it (or owns the group
        of a group message) and it was sent at or after ``sent_after`` (ms since the
        epoch: now minus the recall window; the owner keeps to the window too).

        The body and extra are deleted from storage in the same transaction that sets
        ``recalled_at``, and conversations whose last message it is lose their preview.
        Recalling a recalled message changes nothing (``already``). Raises
        ``UnknownMessage`` (not in the account's inbox), ``NotTheSender``,
        ``RecallExpired``.
        """
        ...

    async def hide_message(self, tenant: str, account: str, message_id: int) -> bool:
        """Hide the message from the account's own reads; False if it already was.

        The inbox row stays (sequences keep no gaps, acks still work) but
        ``list_index``, ``get_contents`` and ``history`` leave it out for this account.
        Raises ``UnknownMessage`` when it is not in the account's inbox.
        """
        ...
