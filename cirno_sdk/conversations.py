"""The conversation calls of the public API: the list, history, reads, recall, delete.

Guarantees
----------
- Every call waits for the connection and retries (see :mod:`cirno_sdk.calls`) until
  ``request_deadline``. All of them are safe to repeat: a read only moves forward,
  a second recall or delete of the same message changes nothing.
- Contents are loaded lazily: the conversation list carries only each conversation's
  last message preview; a conversation's messages (with their bodies) are fetched when
  :meth:`Conversations.history` opens it, a page at a time, newest first.
- Read receipts and recalls from the server come as events (:class:`ReadEvent`,
  :class:`RecallEvent`) on :meth:`Client.events`.
"""

from __future__ import annotations

from collections.abc import Callable

from cirno_sdk.calls import Caller
from cirno_sdk.convert import synced_message
from cirno_sdk.models import (
    Conversation,
    ConversationKind,
    ConversationPage,
    HistoryPage,
    ReadCount,
)
from data_plane.wire import Command, pb


def conversation(raw: pb.Conversation) -> Conversation:
    """A protobuf ``Conversation``."""
    return Conversation(
        kind=ConversationKind(raw.kind),
        peer=raw.peer,
        last_message_id=raw.last_message_id,
        last_sender=raw.last_sender,
        last_time=raw.last_time,
        last_type=raw.last_type,
        preview=raw.preview,
        unread=raw.unread,
        read_message_id=raw.read_message_id,
        last_seq=raw.last_seq,
    )


class Conversations:
    """Conversation calls on behalf of the account ``me()`` returns (known after login)."""

    def __init__(self, calls: Caller, *, me: Callable[[], str], request_deadline: float) -> None:
        self._calls = calls
        self._me = me
        self._request_deadline = request_deadline

    def _deadline(self) -> float:
        return self._calls.deadline(self._request_deadline)

    async def list(self, *, before_seq: int = 0, limit: int = 20) -> ConversationPage:
        """One page of the conversation list, newest activity first (``before_seq``: the
        previous page's last ``last_seq``; ``limit`` at most 100)."""
        packet = await self._calls.call(
            Command.CHAT_CONVERSATION_LIST,
            pb.ConversationListReq(before_seq=before_seq, limit=limit),
            deadline=self._deadline(),
        )
        page = packet.parse_body(pb.ConversationListResp)
        return ConversationPage(tuple(conversation(c) for c in page.conversations), page.has_more)

    async def history(
        self, kind: ConversationKind, peer: str, *, before: int = 0, limit: int = 20
    ) -> HistoryPage:
        """The conversation's messages before message ``before`` (0: the newest), newest
        first, with their contents; recalled ones are tombstones (``recalled``)."""
        packet = await self._calls.call(
            Command.CHAT_HISTORY,
            pb.HistoryReq(kind=int(kind), peer=peer, before_message_id=before, limit=limit),
            deadline=self._deadline(),
        )
        page = packet.parse_body(pb.HistoryResp)
        me = self._me()
        messages = tuple(synced_message(m.index, m.content, me) for m in page.messages)
        return HistoryPage(messages, page.has_more)

    async def read(
        self, kind: ConversationKind, peer: str, message_id: int
    ) -> tuple[bool, Conversation]:
        """Mark the conversation read up to ``message_id`` (only ever forward); whether
        the position moved, and the conversation as it now stands. The account's other
        devices and, in a 1:1 conversation, the peer are told (a :class:`ReadEvent`)."""
        packet = await self._calls.call(
            Command.CHAT_READ,
            pb.ReadReq(kind=int(kind), peer=peer, message_id=message_id),
            deadline=self._deadline(),
        )
        resp = packet.parse_body(pb.ReadResp)
        return resp.moved, conversation(resp.conversation)

    async def read_count(self, message_id: int) -> ReadCount:
        """How many of the other members have read our group message ``message_id``."""
        packet = await self._calls.call(
            Command.CHAT_READ_COUNT,
            pb.ReadCountReq(message_id=message_id),
            deadline=self._deadline(),
        )
        resp = packet.parse_body(pb.ReadCountResp)
        return ReadCount(resp.read, resp.members)

    async def recall(self, message_id: int) -> int:
        """Take our message back (within the server's recall window); returns when it
        was recalled. Raises :class:`RequestRefused` with status ``EXPIRED`` after the
        window, ``FORBIDDEN`` for someone else's message."""
        packet = await self._calls.call(
            Command.CHAT_RECALL, pb.RecallReq(message_id=message_id), deadline=self._deadline()
        )
        return packet.parse_body(pb.RecallResp).recalled_at

    async def delete(self, message_id: int) -> None:
        """Hide a message from this account's history and sync (others keep it)."""
        await self._calls.call(
            Command.CHAT_DELETE, pb.DeleteReq(message_id=message_id), deadline=self._deadline()
        )
