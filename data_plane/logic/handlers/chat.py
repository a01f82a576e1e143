"""1:1 chat and acks (docs/design.md, "Message path"); offline sync is in :mod:`.sync`.

``chat.user.talk`` stores the message (content once, one inbox row for the receiver and
one for the sender) and answers ``MessageResp`` only after the commit; then it pushes to
every online device of the receiver and to the sender's other devices. A ``dest`` that
is not an account name is refused (NoDestination, ``logic.names``), and so is a message
whose push would not fit a client packet (TooLarge, ``logic.push_size``), both before
anything is stored; then the tenant's moderation hook, if it has one, may refuse the
message or replace its body (``logic.moderation.gate``). The answer and
each push carry the message's sequence in the inbox of the account they go to
(``inbox_seq``), so a device that sees a number skipped knows a push was lost (e.g. this
node died between a commit and its push) and syncs. A resend with
the same ``client_msg_id`` gets the original id and time and pushes nothing. Pushes go
through the :class:`~data_plane.logic.pushes.Pusher`, which keeps and retries what
cannot go out now (the session store failing, a gateway not linked yet), and carry each
channel's account's inbox sequence in the ``seqs`` meta, by which the gateway delivers
every row once and in order (docs/design.md, "Delivery promise").
"""

from __future__ import annotations

from data_plane.logic import names
from data_plane.logic.context import Request
from data_plane.logic.moderation.gate import ModerationGate
from data_plane.logic.outbound_hooks import OutboundHooks
from data_plane.logic.push_size import refuse_oversize_push
from data_plane.logic.pushes import Pusher, PushPart
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.protocol import SendResult
from data_plane.wire import Command, LogicPacket, Status, pb


def message_push(
    command: str,
    req: pb.MessageReq,
    sender: str,
    dest: str,
    result: SendResult,
    group: str = "",
    inbox_seq: int = 0,
) -> LogicPacket:
    """The push announcing a stored message; the header's ``dest`` is the receiver (1:1)
    or the group, so the sender's other devices know where their message went.
    ``inbox_seq`` is the message's sequence in the inbox of the account pushed to (1:1)."""
    return LogicPacket.make_push(
        command,
        pb.MessagePush(
            messageId=result.message_id,
            type=req.type,
            body=req.body,
            extra=req.extra,
            sender=sender,
            sendTime=result.send_time,
            client_msg_id=req.client_msg_id,
            seq=result.seq,
            group=group,
            inbox_seq=inbox_seq,
        ),
        dest=dest,
    )


class ChatHandlers:
    """``chat.user.talk`` and ``chat.talk.ack``."""

    def __init__(
        self,
        stores: TenantStores,
        pusher: Pusher,
        hooks: OutboundHooks | None = None,
        moderation: ModerationGate | None = None,
    ) -> None:
        self._stores = stores
        self._pusher = pusher
        self._hooks = hooks or OutboundHooks()
        self._moderation = moderation

    async def user_talk(self, request: Request) -> None:
        """Store, answer after the commit, then push."""
        store = await self._stores.get(request.tenant, write=True)
        receiver = request.packet.dest
        if not receiver:
            request.fail(Status.NO_DESTINATION, "chat.user.talk needs the receiver in dest")
            return
        names.receiver(receiver)
        req = request.packet.parse_body(pb.MessageReq)
        sender, command = request.account, Command.CHAT_USER_TALK
        refuse_oversize_push(
            lambda result, seq: message_push(command, req, sender, receiver, result, "", seq),
            request.max_answer_size,
            raw_body=len(request.packet.body),
            strings=command + receiver + sender,
        )
        if self._moderation is not None:  # the tenant's hook may refuse or rewrite it
            req = await self._moderation.screen(
                request,
                req,
                receiver=receiver,
                group="",
                push_of=lambda r: (
                    lambda result, seq: message_push(command, r, sender, receiver, result, "", seq)
                ),
            )
        result = await store.send_user_message(
            request.tenant,
            request.account,
            receiver,
            req.type,
            req.body.encode(),
            req.extra,
            req.client_msg_id or None,
        )
        request.reply(
            body=pb.MessageResp(
                messageId=result.message_id, sendTime=result.send_time, inbox_seq=result.inbox_seq
            )
        )
        if result.duplicate:
            return
        await self._push_user_message(request, req, receiver, result)

    async def _push_user_message(
        self, request: Request, req: pb.MessageReq, receiver: str, result: SendResult
    ) -> None:
        """Push to the receiver's devices and the sender's other devices, each with its
        own inbox's sequence (two packets). One session lookup for both accounts."""
        sender = request.account
        command = Command.CHAT_USER_TALK
        seq = result.receiver_inbox_seq
        parts = [
            PushPart(
                [receiver],
                message_push(command, req, sender, receiver, result, "", seq),
                {receiver: seq},
            )
        ]
        if receiver != sender:
            seq = result.inbox_seq
            parts.append(
                PushPart(
                    [sender],
                    message_push(command, req, sender, receiver, result, "", seq),
                    {sender: seq},
                )
            )
        await self._pusher.push(request.tenant, request.channel_id, parts)
        if receiver != sender:  # a push notification if the receiver has no device online
            await self._hooks.message_stored(
                request.tenant,
                [receiver],
                sender=sender,
                group_id="",
                message_id=result.message_id,
                body=req.body,
            )

    async def ack(self, request: Request) -> None:
        """Move this device's read index forward to the acknowledged message."""
        store = await self._stores.get(request.tenant)
        req = request.packet.parse_body(pb.MessageAckReq)
        if req.messageId <= 0:
            request.fail(Status.INVALID_PACKET_BODY, "messageId must be positive")
            return
        await store.ack(request.tenant, request.account, request.device, req.messageId)
        request.reply()
