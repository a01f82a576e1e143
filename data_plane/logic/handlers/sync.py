"""Offline sync: ``chat.offline.index`` and ``chat.offline.content``.

The promises are in docs/design.md, "Delivery promises".

A client that was away pulls its inbox in two steps: index pages (entries strictly
after a message id, or after its device's read index when the id is 0, oldest first,
``has_more`` while entries remain after the page), then the contents of the ids it wants, in the
order it asked. Contents are only given for messages in the caller's own inbox.

Two internal commands serve the gateways' sequencers (never a client: the gateway
refuses ``sync.`` commands from clients): ``sync.fill`` pushes the inbox rows
``from``..``to`` of the carrying channel's account again, to that channel alone, as
the same packets their first push was, and then answers (on the same link, so the
pushes arrive first); ``sync.heads`` answers the inbox heads of a batch of accounts.
"""

from __future__ import annotations

from data_plane.cluster.protocol import (
    META_ACCOUNTS,
    META_CHANNELS,
    META_FROM,
    META_HEADS,
    META_SEQS,
    META_TO,
)
from data_plane.logic.context import Request
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.protocol import Direction, InboxMessage
from data_plane.wire import Command, LogicPacket, Meta, Status, pb

INDEX_PAGE_SIZE = 1000
MAX_CONTENT_IDS = 200
MAX_FILL_ROWS = 500
"""Rows per ``sync.fill`` (the gateway asks again for the rest)."""
MAX_HEADS_ACCOUNTS = 1000
"""Accounts per ``sync.heads``."""


def repush(account: str, row: InboxMessage) -> LogicPacket:
    """The push of an inbox row of ``account``, as its first push was (``message_push``):
    1:1 with the row's inbox sequence and the receiver in ``dest``, group with the group
    sequence and the group in ``dest``."""
    if row.group_id:
        command, sender, dest, inbox_seq = Command.CHAT_GROUP_TALK, row.account_b, row.group_id, 0
    elif row.direction == Direction.SENT:
        command, sender, dest, inbox_seq = Command.CHAT_USER_TALK, account, row.account_b, row.seq
    else:
        command, sender, dest, inbox_seq = Command.CHAT_USER_TALK, row.account_b, account, row.seq
    body = pb.MessagePush(
        messageId=row.message_id,
        type=row.type,
        body=row.body.decode("utf-8", "replace"),
        extra=row.extra,
        sender=sender,
        sendTime=row.send_time,
        client_msg_id=row.client_msg_id,
        seq=row.group_seq,
        group=row.group_id,
        inbox_seq=inbox_seq,
    )
    return LogicPacket.make_push(command, body, dest=dest)


def _int_meta(request: Request, key: str) -> int:
    try:
        return int(request.packet.meta_value(key) or "")
    except ValueError:
        return -1


class SyncHandlers:
    """``chat.offline.index`` and ``chat.offline.content`` over the tenant's message store."""

    def __init__(self, stores: TenantStores) -> None:
        self._stores = stores

    async def index(self, request: Request) -> None:
        """Inbox entries strictly after ``message_id`` (after the read index when 0)."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.MessageIndexReq)
        if req.message_id < 0:
            request.fail(Status.INVALID_PACKET_BODY, "message_id must not be negative")
            return
        page = await store.list_index(
            request.tenant, request.account, request.device, req.message_id, INDEX_PAGE_SIZE
        )
        resp = pb.MessageIndexResp(has_more=page.has_more)
        for entry in page.entries:
            resp.indexes.add(
                message_id=entry.message_id,
                direction=int(entry.direction),
                send_time=entry.send_time,
                accountB=entry.account_b,
                group=entry.group_id,
                seq=entry.seq,
            )
        request.reply(body=resp)

    async def content(self, request: Request) -> None:
        """Contents of messages in the caller's inbox, in the requested order."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.MessageContentReq)
        ids = list(req.message_ids)
        if not ids:
            request.fail(Status.INVALID_PACKET_BODY, "message_ids is empty")
            return
        if len(ids) > MAX_CONTENT_IDS:
            request.fail(Status.TOO_LARGE, f"at most {MAX_CONTENT_IDS} ids per request")
            return
        contents = await store.get_contents(request.tenant, request.account, ids)
        missing = sorted(set(ids) - {c.message_id for c in contents})
        if missing:
            shown = ", ".join(str(i) for i in missing[:20])
            request.fail(Status.NOT_FOUND, f"not in your inbox: {shown}")
            return
        resp = pb.MessageContentResp()
        for content in contents:
            resp.contents.add(
                messageId=content.message_id,
                type=content.type,
                body=content.body.decode("utf-8", "replace"),
                extra=content.extra,
                recalled=content.recalled,
            )
        request.reply(body=resp)

    async def fill(self, request: Request) -> None:
        """Push the rows ``from``..``to`` (at most ``MAX_FILL_ROWS``) to the requesting
        channel, then answer with the last sequence pushed in ``to`` (``from`` - 1 when
        none was)."""
        first, last = _int_meta(request, META_FROM), _int_meta(request, META_TO)
        if first < 1 or last < first:
            request.fail(Status.INVALID_PACKET_BODY, "sync.fill needs 1 <= from <= to")
            return
        store = await self._stores.get(request.tenant)
        limit = min(last - first + 1, MAX_FILL_ROWS)
        rows = await store.read_inbox(request.tenant, request.account, first - 1, limit)
        pushed = first - 1
        channel = Meta(META_CHANNELS, request.channel_id)
        for row in rows:
            packet = repush(request.account, row).replace(
                meta=(channel, Meta(META_SEQS, str(row.seq)))
            )
            if not request.conn.send(packet.encode()):
                break  # the link is full: the answer says how far it got
            pushed = row.seq
        request.reply(meta=(Meta(META_TO, str(pushed)),))

    async def heads(self, request: Request) -> None:
        """The inbox heads of the ``accounts`` meta, aligned, in the ``heads`` meta."""
        accounts = [a for a in (request.packet.meta_value(META_ACCOUNTS) or "").split(",") if a]
        if len(accounts) > MAX_HEADS_ACCOUNTS:
            request.fail(Status.TOO_LARGE, f"at most {MAX_HEADS_ACCOUNTS} accounts")
            return
        store = await self._stores.get(request.tenant)
        heads = await store.inbox_heads(request.tenant, accounts)
        request.reply(meta=(Meta(META_HEADS, ",".join([str(heads[a]) for a in accounts])),))
