"""Taking messages back: ``chat.recall`` and ``chat.delete`` (docs/protocol.md,
"Conversations").

``chat.recall``: the sender (or, for a group message, the group's owner or an admin)
takes a message back within the recall window (the tenant's ``recall_window_s``, set
over REST and read from the tenant directory; for a tenant that sets none the logic
node's ``LogicSettings.recall_window_s``, default 2 minutes); the stored content
becomes a tombstone in the same transaction that checks the window (``recall`` in the
store), the sender gets ``RecallResp``, then every device of everyone the message
reached (both parties of a 1:1 message, the group's current members) but the requesting
one gets a ``RecallNotify`` push (command ``chat.recall``). A recall after the window is
refused with ``Expired`` (440), by anyone else with ``Forbidden`` (403).
Recalling a recalled message answers success again and pushes nothing.

``chat.delete`` hides a message from the caller's own account only (its sync and
history); nobody else is told.

Recall notices are not inbox rows: they go through ``notify_accounts`` (and so
``push_unsequenced``) and carry no inbox sequence.
"""

from __future__ import annotations

from collections.abc import Callable

from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.conversations import notify_accounts
from data_plane.logic.settings import DEFAULT_RECALL_WINDOW_S
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.ids import wall_clock_ms
from data_plane.storage.sessions.protocol import SessionStore
from data_plane.wire import Command, LogicPacket, Status, pb


class RecallHandlers:
    """``chat.recall`` and ``chat.delete``; ``now_ms`` is the clock the window is read on."""

    def __init__(
        self,
        stores: TenantStores,
        sessions: SessionStore,
        hub: GatewayHub,
        *,
        recall_window_s: float = DEFAULT_RECALL_WINDOW_S,
        tenant_window_s: Callable[[str], float | None] = lambda tenant: None,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._stores = stores
        self._sessions = sessions
        self._hub = hub
        self.recall_window_ms = int(recall_window_s * 1000)
        """The default window, for tenants that set none."""
        self._tenant_window_s = tenant_window_s
        self._now_ms = now_ms

    def window_ms(self, tenant: str) -> int:
        """The tenant's recall window (its own, else the node's default), milliseconds."""
        own = self._tenant_window_s(tenant)
        return self.recall_window_ms if own is None else int(own * 1000)

    async def recall(self, request: Request) -> None:
        """Tombstone the caller's message if still inside the window, answer, push."""
        req = request.packet.parse_body(pb.RecallReq)
        if req.message_id <= 0:
            request.fail(Status.INVALID_PACKET_BODY, "message_id must be positive")
            return
        store = await self._stores.get(request.tenant, write=True)
        sent_after = self._now_ms() - self.window_ms(request.tenant)
        result = await store.recall(request.tenant, request.account, req.message_id, sent_after)
        request.reply(body=pb.RecallResp(recalled_at=result.recalled_at))
        if result.already:
            return
        message = result.message
        notice = LogicPacket.make_push(
            Command.CHAT_RECALL,
            pb.RecallNotify(
                message_id=message.message_id,
                sender=message.sender,
                group=message.group_id,
                recalled_at=result.recalled_at,
                recalled_by=request.account,
            ),
            dest=message.group_id or message.receiver,
        )
        await notify_accounts(self._sessions, self._hub, request, result.recipients, notice)

    async def delete(self, request: Request) -> None:
        """Hide a message of the caller's inbox from the caller's own reads."""
        req = request.packet.parse_body(pb.DeleteReq)
        if req.message_id <= 0:
            request.fail(Status.INVALID_PACKET_BODY, "message_id must be positive")
            return
        store = await self._stores.get(request.tenant)
        await store.hide_message(request.tenant, request.account, req.message_id)
        request.reply()
