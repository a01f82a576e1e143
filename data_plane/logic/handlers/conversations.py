"""Conversations: ``chat.conversation.list``, ``chat.history``, ``chat.read``,
``chat.read.count`` (docs/protocol.md, "Conversations").

The list and a conversation's history are reads of the caller's own conversations
(``ConversationStore``); nothing is pushed. ``chat.read`` moves the account's read
position in one conversation, answers with the conversation as it now stands, then
pushes a ``ReadNotify`` (command ``chat.read``) to the reader's other devices (their
unread counts drop to the one given) and, in a 1:1 conversation, to the other party's
devices (a read receipt). These pushes are not inbox rows: they are sent through
:func:`push_unsequenced` and carry no inbox sequence. A read that does not move the
position pushes nothing.
"""

from __future__ import annotations

import logging

from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.presence import push_unsequenced
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.messages.conversation_protocol import (
    Conversation,
    ConversationKind,
    HistoryEntry,
)
from data_plane.storage.sessions.protocol import SessionStore
from data_plane.wire import Command, LogicPacket, Status, pb

log = logging.getLogger(__name__)

DEFAULT_PAGE = 20
MAX_PAGE = 100
"""Conversations or history messages per page (a history page of 100 16 KiB bodies is
still far below the packet limit a client sets; the answer is refused beyond it)."""


async def notify_accounts(
    sessions: SessionStore,
    hub: GatewayHub,
    request: Request,
    accounts: list[str],
    packet: LogicPacket,
) -> None:
    """Push a notice that is **not** an inbox row (read receipts, recalls) to every
    device of ``accounts`` but the requesting one, through :func:`push_unsequenced`: it
    carries no inbox sequence, so a client's gap detection never counts it. Best effort,
    like presence and typing: a failing session store is logged, not reported (the
    answer has been sent; the state is there to read)."""
    try:
        found = await sessions.get_locations_many(request.tenant, accounts)
    except SessionStoreUnavailable as exc:
        log.warning("notice not pushed, session store unavailable: %s", exc)
        return
    targets = [
        (location.gateway_id, location.channel_id)
        for locations in found.values()
        for location in locations
        if location.channel_id != request.channel_id
    ]
    if targets:
        push_unsequenced(hub, targets, packet)


def conversation_pb(conversation: Conversation) -> pb.Conversation:
    """The wire form of a conversation."""
    return pb.Conversation(
        kind=int(conversation.kind),
        peer=conversation.peer,
        last_seq=conversation.last_seq,
        last_message_id=conversation.last_message_id,
        last_sender=conversation.last_sender,
        last_time=conversation.last_time,
        last_type=conversation.last_type,
        preview=conversation.preview,
        unread=conversation.unread,
        read_message_id=conversation.read_message_id,
        read_seq=conversation.read_seq,
    )


def history_pb(item: HistoryEntry) -> pb.HistoryMessage:
    """The wire form of a history entry: its index row and its content."""
    entry, content = item.entry, item.content
    return pb.HistoryMessage(
        index=pb.MessageIndex(
            message_id=entry.message_id,
            direction=int(entry.direction),
            send_time=entry.send_time,
            accountB=entry.account_b,
            group=entry.group_id,
            seq=entry.seq,
        ),
        content=pb.MessageContent(
            messageId=content.message_id,
            type=content.type,
            body=content.body.decode("utf-8", "replace"),
            extra=content.extra,
            recalled=content.recalled,
        ),
    )


def page_size(request: Request, limit: int) -> int | None:
    """The page size asked for (0: the default); None after refusing a bad one."""
    if limit < 0 or limit > MAX_PAGE:
        request.fail(Status.INVALID_PACKET_BODY, f"limit must be 0..{MAX_PAGE}")
        return None
    return limit or DEFAULT_PAGE


def conversation_key(request: Request, kind: int, peer: str) -> ConversationKind | None:
    """The conversation kind asked for; None after refusing a bad kind or empty peer."""
    if kind not in (ConversationKind.USER, ConversationKind.GROUP) or not peer:
        request.fail(Status.INVALID_PACKET_BODY, "kind must be 0 (user) or 1 (group), peer set")
        return None
    return ConversationKind(kind)


class ConversationHandlers:
    """``chat.conversation.list``, ``chat.history``, ``chat.read``, ``chat.read.count``."""

    def __init__(self, stores: TenantStores, sessions: SessionStore, hub: GatewayHub) -> None:
        self._stores = stores
        self._sessions = sessions
        self._hub = hub

    async def list(self, request: Request) -> None:
        """The caller's conversations, newest activity first, one page."""
        req = request.packet.parse_body(pb.ConversationListReq)
        limit = page_size(request, req.limit)
        if limit is None:
            return
        store = await self._stores.get(request.tenant)
        page = await store.list_conversations(
            request.tenant, request.account, max(req.before_seq, 0), limit
        )
        resp = pb.ConversationListResp(has_more=page.has_more)
        resp.conversations.extend(conversation_pb(c) for c in page.conversations)
        request.reply(body=resp)

    async def history(self, request: Request) -> None:
        """One conversation's messages before a message id, newest first, with contents."""
        req = request.packet.parse_body(pb.HistoryReq)
        kind = conversation_key(request, req.kind, req.peer)
        limit = page_size(request, req.limit)
        if kind is None or limit is None:
            return
        store = await self._stores.get(request.tenant)
        page = await store.history(
            request.tenant,
            request.account,
            kind,
            req.peer,
            max(req.before_message_id, 0),
            limit,
        )
        resp = pb.HistoryResp(has_more=page.has_more)
        resp.messages.extend(history_pb(item) for item in page.entries)
        request.reply(body=resp)

    async def read(self, request: Request) -> None:
        """Move the read position, answer, then tell the other devices and the peer."""
        req = request.packet.parse_body(pb.ReadReq)
        kind = conversation_key(request, req.kind, req.peer)
        if kind is None:
            return
        if req.message_id <= 0:
            request.fail(Status.INVALID_PACKET_BODY, "message_id must be positive")
            return
        store = await self._stores.get(request.tenant)
        result = await store.mark_read(
            request.tenant, request.account, kind, req.peer, req.message_id
        )
        request.reply(
            body=pb.ReadResp(moved=result.moved, conversation=conversation_pb(result.conversation))
        )
        if not result.moved:
            return
        notice = LogicPacket.make_push(
            Command.CHAT_READ,
            pb.ReadNotify(
                reader=request.account,
                kind=int(kind),
                peer=req.peer,
                message_id=req.message_id,
                unread=result.conversation.unread,
            ),
            dest=req.peer,
        )
        accounts = [request.account]
        if kind == ConversationKind.USER and req.peer != request.account:
            accounts.append(req.peer)
        await notify_accounts(self._sessions, self._hub, request, accounts, notice)

    async def read_count(self, request: Request) -> None:
        """How many of a group message's other members have read it (its sender only)."""
        req = request.packet.parse_body(pb.ReadCountReq)
        if req.message_id <= 0:
            request.fail(Status.INVALID_PACKET_BODY, "message_id must be positive")
            return
        store = await self._stores.get(request.tenant)
        count = await store.read_count(request.tenant, request.account, req.message_id)
        request.reply(body=pb.ReadCountResp(read=count.read, members=count.members))
