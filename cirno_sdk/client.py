"""The public API: :class:`Client`, one connection at a time, reconnecting, syncing, acking.

Theory of operation
-------------------
A client is a few parts wired together here, each in a module of its own and each
talking to the others only through what its constructor was given:

- :class:`~cirno_sdk.link.Link` -- the current connection, its state (online, stopped)
  and the matching of responses to requests;
- :class:`~cirno_sdk.session.SessionRunner` -- connect, log in, read, ping, reconnect
  with back-off (the one root task; its sessions are task groups);
- :class:`~cirno_sdk.delivery.Delivery` -- offline sync, batched ack and gap filling:
  every message reaches the store and then :meth:`Client.messages` exactly once, in
  inbox order (:mod:`cirno_sdk.ordering`);
- :class:`~cirno_sdk.calls.Caller` -- requests that wait for the connection and retry
  until a deadline; :class:`~cirno_sdk.groups.Groups` -- the group calls;
  :class:`~cirno_sdk.conversations.Conversations` -- the conversation list, history,
  reads, recall and delete;
- :class:`~cirno_sdk.contents.Contents` -- message contents by id, fetched when the
  application opens a conversation or reads messages (a lazy sync delivers index
  entries only: ``Message.content_loaded``);
- :class:`~cirno_sdk.feeds.Feeds` -- the message and event feeds the application reads;
- :class:`~cirno_sdk.presence.Presence` -- presence subscriptions and typing, which
  also sees every push first (presence and typing become events, the rest go on to
  the delivery).

When a connection ends, every request still waiting fails with :class:`ConnectionLost`.
:meth:`Client.send` catches that (and response timeouts, and 3xx statuses) and sends
again with the *same* ``client_msg_id`` once the client is back online, so the server
stores the message once. Delivered messages go to the store first, then to the
:meth:`Client.messages` queue; the ack is the newest delivered message, so a brand-new
store on the same device starts after it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Literal

from cirno_sdk.acks import AckBatcher
from cirno_sdk.backoff import Backoff
from cirno_sdk.calls import Caller
from cirno_sdk.contents import Contents
from cirno_sdk.conversations import Conversations
from cirno_sdk.delivery import Delivery
from cirno_sdk.errors import (
    CirnoError,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    DeadlineExceeded,
    RequestTimeout,
    SendRefused,
)
from cirno_sdk.feeds import Feeds
from cirno_sdk.groups import Groups
from cirno_sdk.link import NOT_CONNECTED, Link
from cirno_sdk.models import (
    Conversation,
    ConversationKind,
    ConversationPage,
    Direction,
    Event,
    GroupInfo,
    HistoryPage,
    JoinPolicy,
    Member,
    Message,
    ReadCount,
    Sent,
)
from cirno_sdk.options import ClientOptions
from cirno_sdk.ordering import Orderer
from cirno_sdk.presence import Presence
from cirno_sdk.pull import IdlePull
from cirno_sdk.session import Credentials, SessionRunner
from cirno_sdk.store import MemoryStore, Store
from cirno_sdk.targets import Target, Targets, Token
from data_plane.wire import Command, MessageType, pb

PushPlatform = Literal["android", "ios", "web", "other"]
"""What ``Client.register_push`` accepts as the token's platform."""

SDK_VERSION = "cirno-sdk-py/0.1.0"


class Client:
    """A cirno-im client. Use as ``async with Client(url, token) as client: ...``.

    ``url`` is ``ws://host:port/`` or ``tcp://host:port``; or a list of such URLs (the
    client moves to the next one after each failed or lost connection); or an async
    resolver returning the URL to use, called before every (re)connect (e.g.
    :func:`~cirno_sdk.route_resolver`). ``token`` is a user JWT, or an async callable
    returning a fresh one (called before every login). ``store`` keeps delivered
    messages and the sync/ack positions (a :class:`MemoryStore` by default).
    """

    def __init__(
        self,
        url: Target,
        token: Token,
        *,
        device: str = "default",
        client_version: str = SDK_VERSION,
        options: ClientOptions | None = None,
        store: Store | None = None,
    ) -> None:
        opts = self._options = options or ClientOptions()
        self._store: Store = store if store is not None else MemoryStore()
        # One clock for every deadline and timer of the client (orderer, acks, calls).
        clock = time.monotonic
        self._clock = clock
        self._targets = Targets(url)
        self._feeds = Feeds(on_event=opts.on_event)
        self._link = Link(on_stop=self._feeds.close, clock=clock)
        self._delivery = Delivery(
            self._link,
            self._feeds,
            self._store,
            Orderer(is_known=self._store.contains, gap_wait=opts.gap_wait, clock=clock),
            AckBatcher(interval=opts.ack_interval / 1000, every=opts.ack_every, clock=clock),
            IdlePull(interval=opts.pull_interval, jitter=opts.pull_jitter, clock=clock),
            response_timeout=opts.response_timeout,
            content_batch=opts.content_batch,
            lazy=opts.content == "lazy",
            clock=clock,
        )
        self._calls = Caller(self._link, response_timeout=opts.response_timeout, clock=clock)
        self._presence = Presence(
            self._calls, self._feeds, self._delivery, request_deadline=opts.request_deadline
        )
        self._runner = SessionRunner(
            self._link,
            self._feeds,
            self._presence,
            self._targets,
            Backoff(
                initial=opts.backoff_initial,
                maximum=opts.backoff_max,
                multiplier=opts.backoff_multiplier,
                jitter=opts.backoff_jitter,
            ),
            Credentials(token, device, client_version),
            opts,
        )
        self._groups = Groups(
            self._calls,
            self._delivery,
            me=lambda: self._link.account,
            request_deadline=opts.request_deadline,
        )
        self._conversations = Conversations(
            self._calls, me=lambda: self._link.account, request_deadline=opts.request_deadline
        )
        self._contents = Contents(
            self._calls,
            self._store,
            batch=opts.content_batch,
            request_deadline=opts.request_deadline,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def account(self) -> str:
        """The account logged in as ("" before the first login)."""
        return self._link.account

    @property
    def channel_id(self) -> str:
        """The channel id of the current (or last) login ("" before the first)."""
        return self._link.channel_id

    @property
    def store(self) -> Store:
        """The local store of delivered messages."""
        return self._store

    @property
    def stopped(self) -> bool:
        """Whether the client has stopped for good (closed, kicked out, login refused)."""
        return self._link.is_stopped()

    @property
    def online(self) -> bool:
        """Whether the client is connected and logged in right now."""
        return self._link.online

    async def connect(self) -> None:
        """Connect and log in; retries unreachable gateways until
        ``first_connect_deadline``. Raises :class:`LoginRefused` for a refused token,
        :class:`ConnectFailed` when no login succeeded in time."""
        if self._link.started:
            raise RuntimeError("connect() was already called")
        self._link.start()
        self._runner.start()
        try:
            await self._link.wait_online(self._clock() + self._options.first_connect_deadline)
        except DeadlineExceeded as exc:
            await self.aclose()
            where = self._targets.description
            raise ConnectFailed(f"no login to {where} within the deadline") from exc
        except CirnoError:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Flush the pending ack (best effort), close the connection, stop every task.

        :meth:`messages` and :meth:`events` end; pending sends raise :class:`ClientClosed`.
        Idempotent. The store is not closed (it may outlive the client).
        """
        if self._link.online and self._delivery.ack_pending:
            await self._delivery.flush_ack(timeout=1.0)
        await self._runner.close()

    # -- sending -------------------------------------------------------------------------

    async def send(
        self,
        to: str,
        body: str,
        *,
        type: int = MessageType.TEXT,
        extra: str = "",
        group: bool = False,
    ) -> Sent:
        """Send a message to account ``to`` (or to group ``to`` with ``group=True``).

        Returns once the server has stored it. Resends with the same ``client_msg_id``
        after a response timeout, a 3xx status or a reconnect, until ``send_deadline``
        (then :class:`DeadlineExceeded`); the server stores it once. Raises
        :class:`SendRefused` for a 1xx/4xx status and :class:`ClientClosed` when the
        client stops.
        """
        if not self._link.started:
            raise ClientClosed(NOT_CONNECTED)
        client_msg_id = uuid.uuid4().hex
        req = pb.MessageReq(type=type, body=body, extra=extra, client_msg_id=client_msg_id)
        command = Command.CHAT_GROUP_TALK if group else Command.CHAT_USER_TALK
        deadline = self._calls.deadline(self._options.send_deadline)
        try:
            packet = await self._calls.call(
                command, req, dest=to, deadline=deadline, refused=SendRefused
            )
        except (RequestTimeout, ConnectionLost) as exc:
            raise DeadlineExceeded(f"message {client_msg_id} not confirmed in time") from exc
        resp = packet.parse_body(pb.MessageResp)
        own = Message(
            message_id=resp.messageId,
            sender=self._link.account,
            to="" if group else to,
            group=to if group else "",
            type=type,
            body=body,
            extra=extra,
            send_time=resp.sendTime,
            seq=resp.seq if group else 0,
            client_msg_id=client_msg_id,
            direction=Direction.SENT,
            inbox_seq=0 if group else resp.inbox_seq,
        )
        self._delivery.record_sent(own, group=group)
        return Sent(resp.messageId, resp.sendTime, client_msg_id, resp.seq if group else 0)

    async def sync(self, *, timeout: float | None = None) -> None:
        """Run an offline sync now and return once a sync that started after this call
        has finished (everything committed before the call is then delivered).

        Waits for the connection (reconnecting as usual) until ``timeout`` (default
        ``request_deadline``), then raises :class:`DeadlineExceeded`; raises the stop
        error once the client has stopped.
        """
        if not self._link.started:
            raise ClientClosed(NOT_CONNECTED)
        wait = self._options.request_deadline if timeout is None else timeout
        await self._delivery.sync(self._clock() + wait)

    # -- receiving -----------------------------------------------------------------------

    def messages(self) -> AsyncIterator[Message]:
        """Incoming messages (and our own from other devices), each once, in order; ends
        when the client stops. Meant for one consumer."""
        return self._feeds.messages()

    def events(self) -> AsyncIterator[Event]:
        """Connection and group events; ends when the client stops. One consumer."""
        return self._feeds.events()

    async def load_contents(self, messages: Iterable[Message | int]) -> list[Message]:
        """``messages`` (or message ids) with their contents, in the order given.

        A lazy sync (the default) delivers messages with ``content_loaded`` False; this
        fetches the missing contents with ``chat.offline.content`` (at most
        ``content_batch`` ids per request), keeps them in the store and returns the
        messages loaded. Loaded messages cost nothing; ids the store does not have are
        left out, and so are messages the server no longer has for us (deleted). Waits
        for the connection and retries until ``request_deadline``."""
        return await self._contents.load(messages)

    async def open_conversation(
        self, peer: str, *, group: bool = False, limit: int = 50
    ) -> list[Message]:
        """Open a conversation from the local store: its newest ``limit`` messages
        (with account ``peer``, or of group ``peer``), oldest first, each loaded --
        fetching only the contents not stored yet, so a second open fetches nothing.
        Only what was delivered (synced, pushed, sent) is in the store; older pages
        come from :meth:`history`."""
        return await self._contents.open(peer, group=group, limit=limit)

    # -- groups --------------------------------------------------------------------------

    @property
    def groups(self) -> Groups:
        """Every group call, the administration ones included (``Groups``: dismiss,
        transfer, update, set_admin, mute, apply, approve, applications)."""
        return self._groups

    async def create_group(
        self,
        name: str,
        members: list[str],
        *,
        avatar: str = "",
        introduction: str = "",
        policy: JoinPolicy = JoinPolicy.INVITE,
    ) -> str:
        """Create a group owned by this account (always a member); returns its id. The
        members named are members; others join as ``policy`` says (invite-only unless
        told otherwise).

        Not retried after a lost response (a retry could create a second group).
        """
        return await self._groups.create(
            name, members, avatar=avatar, introduction=introduction, policy=policy
        )

    async def join_group(self, group_id: str, account: str = "") -> None:
        """Add ``account`` (the owner or an admin invites), or this account by default
        (only an open group admits it; see ``groups.apply`` for approval groups)."""
        await self._groups.join(group_id, account)

    async def quit_group(self, group_id: str, account: str = "") -> None:
        """Remove ``account`` (default: this account) from the group."""
        await self._groups.quit(group_id, account)

    async def group_detail(self, group_id: str) -> GroupInfo:
        """The group's name, owner, members, ..."""
        return await self._groups.detail(group_id)

    async def group_members(self, group_id: str) -> list[Member]:
        """All of the group's members, by join time (fetched page by page)."""
        return await self._groups.members(group_id)

    # -- conversations ------------------------------------------------------------------

    async def conversations(self, *, before_seq: int = 0, limit: int = 20) -> ConversationPage:
        """One page of this account's conversations, newest activity first, each with
        its last message's preview and its unread count (see :class:`Conversation`)."""
        return await self._conversations.list(before_seq=before_seq, limit=limit)

    async def history(
        self, peer: str, *, group: bool = False, before: int = 0, limit: int = 20
    ) -> HistoryPage:
        """Open a conversation (with account ``peer``, or group ``peer``): its messages
        before message ``before`` (0: the newest), newest first, with their contents."""
        kind = ConversationKind.GROUP if group else ConversationKind.USER
        return await self._conversations.history(kind, peer, before=before, limit=limit)

    async def mark_read(
        self, peer: str, message_id: int, *, group: bool = False
    ) -> tuple[bool, Conversation]:
        """Mark the conversation read up to ``message_id`` (only ever forward); whether
        it moved, and the conversation now. Other devices and the 1:1 peer are told."""
        kind = ConversationKind.GROUP if group else ConversationKind.USER
        return await self._conversations.read(kind, peer, message_id)

    async def read_count(self, message_id: int) -> ReadCount:
        """How many of the other members have read our group message ``message_id``."""
        return await self._conversations.read_count(message_id)

    async def recall(self, message_id: int) -> int:
        """Take our message back within the server's window; returns the recall time.
        Everyone it reached gets a :class:`RecallEvent`."""
        return await self._conversations.recall(message_id)

    async def delete(self, message_id: int) -> None:
        """Hide a message from this account's own history and sync."""
        await self._conversations.delete(message_id)

    # -- push notifications ----------------------------------------------------------

    async def register_push(self, token: str, platform: PushPlatform = "other") -> None:
        """Register this device's push token (``push.register``).

        While this account has no online device, messages to it are notified through
        the tenant's push provider to every registered token; a burst becomes one
        notification with a count, and signing in cancels what is pending. A new token
        replaces this device's old one; retried like any call (storing it twice is
        harmless).
        """
        req = pb.PushRegisterReq(token=token, platform=platform)
        deadline = self._calls.deadline(self._options.request_deadline)
        await self._calls.call(Command.PUSH_REGISTER, req, deadline=deadline)

    async def unregister_push(self, token: str = "") -> None:
        """Forget this device's push token (only if it is ``token``, when given)."""
        req = pb.PushUnregisterReq(token=token)
        deadline = self._calls.deadline(self._options.request_deadline)
        await self._calls.call(Command.PUSH_UNREGISTER, req, deadline=deadline)

    # -- presence and typing -------------------------------------------------------------

    async def subscribe_presence(self, *accounts: str) -> dict[str, bool]:
        """Follow ``accounts`` (of this tenant); returns whether each is online now.

        Afterwards :meth:`events` carries a :class:`PresenceChanged` when one comes
        online (its first device) or goes offline (its last device). The client
        follows them again after every reconnect (emitting each one's state then). At
        most 200 accounts per connection: beyond, :class:`RequestRefused` (413) and
        nothing is added.
        """
        return await self._presence.subscribe(list(accounts))

    async def unsubscribe_presence(self, *accounts: str) -> None:
        """Stop following ``accounts``."""
        await self._presence.unsubscribe(list(accounts))

    async def typing(self, to: str, *, group: bool = False, stopped: bool = False) -> bool:
        """Tell account ``to`` (or group ``to`` with ``group=True``) that this account is
        typing (``stopped``: no longer typing). Sent once, never stored; the server
        forwards at most one per 2 s per conversation and returns False (429) for the
        rest. Raises :class:`RequestRefused` for a group this account is not in (403)
        or of more than 500 members (413)."""
        return await self._presence.typing(to, group=group, stopped=stopped)
