"""Offline sync: ``chat.offline.index`` and ``chat.offline.content``.

The promises are in docs/design.md, "Delivery promises".

A client that was away pulls its inbox in two steps: index pages (entries strictly
after a message id, or after its device's read index when the id is 0, oldest first,
``has_more`` while entries remain after the page), then the contents of the ids it wants, in the
order it asked. Contents are only given for messages in the caller's own inbox.
"""

from __future__ import annotations

from data_plane.logic.context import Request
from data_plane.logic.tenant_stores import TenantStores
from data_plane.wire import Status, pb

INDEX_PAGE_SIZE = 1000
MAX_CONTENT_IDS = 200


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
