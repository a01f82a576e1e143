"""The ``server.*`` commands: a tenant's server API, served on the control plane's link.

Theory of operation. The control plane turns each REST call of the server API into one
``server.*`` request (:mod:`data_plane.cluster.server_api`) on its link to a logic node;
only that link may send them (:mod:`data_plane.logic.server`). Sends and group changes
are not re-implemented here: each runs the very handler a client's request runs
(``chat.user.talk``, ``chat.group.talk``, ``chat.group.create``/``join``/``quit``,
``chat.group.dismiss``) on an inner request whose account is the one acting, and keeps
the answer that handler gives (:class:`_AnswerSlot`). So a server-API message is
stored by the same call (inbox rows, inbox sequences, the ``message.created`` outbox
row), pushed by the same :class:`~data_plane.logic.pushes.Pusher` (inbox seqs, held
pushes, retries), announced to offline receivers by the same hooks, and made idempotent
by the same ``client_msg_id`` rule (per sender) as a client's; group changes notify the
members and record their webhooks the same way.

What differs from a client, on purpose:

- the inner request has no channel, so every device of the sender gets the push (a
  client's own connection is left out of its pushes; the server API has none);
- the tenant's system sender (:data:`~data_plane.cluster.identity.SYSTEM_SENDER`) may
  send to any group of the tenant without being a member (it gets no inbox row); an
  account named as ``from`` must be a member, as a client must;
- group administration acts as the group's owner (every member notify says so).

Presence and kick read the session store here, and history the tenant's message store:
the logic nodes hold the session store's URL and the sharded message stores, the
control plane holds neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from google.protobuf.message import Message

from data_plane.cluster import server_api as api
from data_plane.cluster.identity import SYSTEM_SENDER
from data_plane.logic import names
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.chat import ChatHandlers
from data_plane.logic.handlers.group import MAX_GROUP_MEMBERS, GroupHandlers
from data_plane.logic.outbound_hooks import OutboundHooks
from data_plane.logic.refusal import Refused
from data_plane.logic.router import Handler
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.protocol import Direction
from data_plane.storage.sessions.protocol import SessionStore
from data_plane.transport.connection import PacketConnection
from data_plane.wire import Command, LogicPacket, Status, decode_packet, pb

INT32 = 2**31


class _AnswerSlot:
    """Stands in for a link so an inner request's handler answers into it: the one
    answer :meth:`Request.reply` sends is kept (bytes), never sent anywhere."""

    remote_address = "server-api"
    is_closed = False

    def __init__(self) -> None:
        self.data = b""

    def send(self, data: bytes) -> bool:
        self.data = data
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Nothing to close."""


def _bad(reason: str) -> Refused:
    return Refused(Status.INVALID_PACKET_BODY, reason)


def _text(body: dict[str, Any], key: str, limit: int = 1 << 20) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(f"{key} must be a string of at most {limit} characters")
    return value


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"{key} must be an integer in {low}..{high}")
    return value


def _accounts(body: dict[str, Any], key: str, limit: int) -> list[str]:
    values = body.get(key, [])
    if not isinstance(values, list) or len(values) > limit:
        raise _bad(f"{key} must be a list of at most {limit} accounts")
    return names.accounts([v if isinstance(v, str) else "" for v in values], key)


class ServerApiHandlers:
    """The ``server.*`` commands over a logic node's handlers, stores and gateway hub."""

    def __init__(
        self,
        stores: TenantStores,
        sessions: SessionStore,
        hub: GatewayHub,
        chat: ChatHandlers,
        group: GroupHandlers,
        *,
        max_packet_size: int,
        hooks: OutboundHooks | None = None,
    ) -> None:
        """``max_packet_size`` is the clients' packet limit: a message whose push would
        not fit it is refused (TooLarge), as a client's is."""
        self._max_packet_size = max_packet_size
        self._hooks = hooks or OutboundHooks()
        self._stores = stores
        self._sessions = sessions
        self._hub = hub
        self._chat = chat
        self._group = group

    def table(self) -> dict[str, Handler]:
        """Every ``server.*`` command's handler."""
        return {
            api.SEND: self.send,
            api.PRESENCE: self.presence,
            api.KICK: self.kick,
            api.GROUP_CREATE: self.group_create,
            api.GROUP_DISMISS: self.group_dismiss,
            api.GROUP_ADD: self.group_add,
            api.GROUP_REMOVE: self.group_remove,
            api.HISTORY: self.history,
        }

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            return api.decode(request.packet.body)
        except api.BadBody as exc:
            raise _bad(str(exc)) from None

    async def _run(
        self,
        handler: Callable[[Request], Awaitable[None]],
        outer: Request,
        account: str,
        command: str,
        body: Message,
        dest: str = "",
    ) -> LogicPacket:
        """Run a client command's ``handler`` as ``account`` (no channel) and return its
        Success answer; any other answer is raised as :class:`Refused`."""
        slot = _AnswerSlot()
        inner = Request(
            LogicPacket.request(command, body, dest=dest),
            outer.tenant,
            account,
            "",
            "",
            "",
            "",
            cast(PacketConnection, slot),
            self._max_packet_size,
        )
        await handler(inner)
        answer = decode_packet(slot.data, max_size=len(slot.data) + 1)
        assert isinstance(answer, LogicPacket)
        if answer.status != Status.SUCCESS:
            reason = answer.parse_body(pb.ErrorResp).message
            raise Refused(Status(answer.status), reason)
        return answer

    async def send(self, request: Request) -> None:
        """Store and deliver a message from the ``account`` meta, as a client's."""
        body = self._body(request)
        to, group = _text(body, "to", 256), _text(body, "group", 256)
        if bool(to) == bool(group):
            raise Refused(Status.NO_DESTINATION, "name exactly one of to and group")
        try:
            req = pb.MessageReq(
                type=_int(body, "type", -INT32, INT32 - 1),
                body=_text(body, "body"),
                extra=_text(body, "extra"),
                client_msg_id=_text(body, "client_msg_id", 256),
            )
        except ValueError as exc:  # protobuf refuses text that is not valid UTF-8
            raise _bad(f"bad message: {exc}") from None
        if to:
            handler, command, dest = self._chat.user_talk, Command.CHAT_USER_TALK, to
        else:
            handler, command, dest = self._group.talk, Command.CHAT_GROUP_TALK, group
        answer = await self._run(handler, request, request.account, command, req, dest)
        resp = answer.parse_body(pb.MessageResp)
        request.reply(
            body=api.encode(
                {"message_id": resp.messageId, "send_time": resp.sendTime, "seq": resp.seq}
            )
        )

    async def presence(self, request: Request) -> None:
        """Each account's live devices (an offline account: an empty list)."""
        accounts = _accounts(self._body(request), "accounts", api.MAX_PRESENCE_ACCOUNTS)
        found = await self._sessions.get_locations_many(request.tenant, accounts)
        answer = {
            account: [
                {
                    "device": loc.device,
                    "gateway": loc.gateway_id,
                    "channel": loc.channel_id,
                    "login_at": loc.login_at,
                    "client_version": loc.client_version,
                }
                for loc in found.get(account, [])
            ]
            for account in accounts
        }
        request.reply(body=api.encode({"accounts": answer}))

    async def kick(self, request: Request) -> None:
        """Send the account's live channels (one device's, or all) a ``KickoutNotify``
        with the reason; their gateways close them (4002). Answers how many were sent."""
        body = self._body(request)
        account = names.account(_text(body, "account", 256), "account")
        device = _text(body, "device", 256)
        reason = _text(body, "reason", api.MAX_REASON_LENGTH)
        found = await self._sessions.get_locations_many(request.tenant, [account])
        targets = [loc for loc in found.get(account, []) if not device or loc.device == device]
        kicked = []
        for location in targets:
            notify = pb.KickoutNotify(channelId=location.channel_id, reason=reason)
            packet = LogicPacket.make_push(
                Command.LOGIN_SIGNIN, notify, channel_id=location.channel_id
            )
            if self._hub.push([location], packet):
                kicked.append(location)
        request.reply(body=api.encode({"kicked": len(kicked)}))
        for location in kicked:  # the ``kickout`` webhook, after the answer
            await self._hooks.kicked(location, reason)

    async def group_create(self, request: Request) -> None:
        """Create a group owned by ``owner`` (a member), as the owner would."""
        body = self._body(request)
        owner = names.account(_text(body, "owner", 256), "owner")
        req = pb.GroupCreateReq(
            name=_text(body, "name", 1024),
            avatar=_text(body, "avatar", 4096),
            introduction=_text(body, "introduction", 4096),
            members=_accounts(body, "members", MAX_GROUP_MEMBERS),
            join_policy=_int(body, "join_policy", 0, 2),  # type: ignore[arg-type]
        )
        answer = await self._run(self._group.create, request, owner, Command.CHAT_GROUP_CREATE, req)
        request.reply(body=api.encode({"group_id": answer.parse_body(pb.GroupCreateResp).group_id}))

    async def _owner(self, request: Request, group_id: str) -> str:
        store = await self._stores.get(request.tenant)
        access = await store.group_access(request.tenant, group_id, SYSTEM_SENDER)
        if access is None:
            raise Refused(Status.NOT_FOUND, f"group {group_id!r} does not exist")
        return access.owner

    def _group_id(self, body: dict[str, Any]) -> str:
        group_id = _text(body, "group", 256)
        if not group_id:
            raise _bad("group is required")
        return group_id

    async def group_dismiss(self, request: Request) -> None:
        """Dismiss the group as its owner; every member is notified."""
        group_id = self._group_id(self._body(request))
        owner = await self._owner(request, group_id)
        req = pb.GroupDismissReq(group_id=group_id)
        await self._run(self._group.admin.dismiss, request, owner, Command.CHAT_GROUP_DISMISS, req)
        request.reply(body=api.encode({}))

    async def group_add(self, request: Request) -> None:
        """Add each account as the owner's invite would (each join notified)."""
        body = self._body(request)
        group_id = self._group_id(body)
        accounts = _accounts(body, "accounts", api.MAX_GROUP_CHANGE)
        owner = await self._owner(request, group_id)
        for account in accounts:
            req = pb.GroupJoinReq(group_id=group_id, account=account)
            await self._run(self._group.join, request, owner, Command.CHAT_GROUP_JOIN, req)
        request.reply(body=api.encode({}))

    async def group_remove(self, request: Request) -> None:
        """Remove each account as the owner would (each removal notified; the owner
        cannot be removed: Forbidden)."""
        body = self._body(request)
        group_id = self._group_id(body)
        accounts = _accounts(body, "accounts", api.MAX_GROUP_CHANGE)
        owner = await self._owner(request, group_id)
        for account in accounts:
            req = pb.GroupQuitReq(group_id=group_id, account=account)
            await self._run(self._group.quit, request, owner, Command.CHAT_GROUP_QUIT, req)
        request.reply(body=api.encode({}))

    async def history(self, request: Request) -> None:
        """A page of the account's inbox after ``after_seq``, oldest first, with the
        contents; a recalled message comes as its tombstone (``recalled``, empty body)."""
        body = self._body(request)
        account = names.account(_text(body, "account", 256), "account")
        after_seq = _int(body, "after_seq", 0, 2**62)
        limit = _int(body, "limit", 1, api.MAX_HISTORY_PAGE)
        store = await self._stores.get(request.tenant)
        rows = await store.read_inbox(request.tenant, account, after_seq, limit)
        contents = await store.get_contents(request.tenant, account, [r.message_id for r in rows])
        recalled = {c.message_id for c in contents if c.recalled}
        messages = [
            {
                "seq": row.seq,
                "message_id": row.message_id,
                "direction": "sent" if row.direction == Direction.SENT else "received",
                "peer": row.account_b,
                "group": row.group_id,
                "group_seq": row.group_seq,
                "send_time": row.send_time,
                "type": row.type,
                "body": "" if row.message_id in recalled else row.body.decode("utf-8", "replace"),
                "extra": "" if row.message_id in recalled else row.extra,
                "client_msg_id": row.client_msg_id,
                "recalled": row.message_id in recalled,
            }
            for row in rows
        ]
        next_after = rows[-1].seq if rows else after_seq
        answer = {
            "messages": messages,
            "next_after_seq": next_after,
            "has_more": len(rows) == limit,
        }
        request.reply(body=api.encode(answer))
