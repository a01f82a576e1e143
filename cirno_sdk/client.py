"""The asyncio client: one connection at a time, reconnecting, syncing, acking.

Theory of operation
-------------------
One *runner* task owns the connection's life: connect, log in, run a session, and after
the session ends wait a back-off delay and start again -- unless the client was kicked
out, its relogin was refused, or it was closed. A session is an ``asyncio.TaskGroup``:

- the **reader** takes packets off the transport, resolves the waiting
  request of each response by its sequence, and turns pushes into messages and events;
  nothing for ``read_timeout`` seconds counts as a dead connection;
- the **syncer** pages ``chat.offline.index`` after the store's sync cursor, fetches
  unknown contents in batches and hands them to the :class:`~cirno_sdk.ordering.Orderer`,
  once after login and again whenever the orderer sees a group gap or an inbox gap (a
  1:1 push whose inbox sequence is beyond the next one: an earlier push was lost);
- the **acker** sends the batched ack of the newest stored message;
- the **pinger** sends a BasicPkt ping every ``ping_interval`` seconds;
- the **gap timer** releases held group messages after ``gap_wait``.

When the reader sees the connection end, the session's other tasks are cancelled and
every request still waiting fails with :class:`ConnectionLost`. :meth:`Client.send`
catches that (and response timeouts, and 3xx statuses) and sends again with the *same*
``client_msg_id`` once the client is back online, so the server stores the message once.
Delivered messages go to the store first, then to the :meth:`Client.messages` queue.

Order is the inbox's, never message-id order (ids are only time-ordered per logic node):
offline sync walks the inbox by the server's cursor, pushes arrive in commit order per
sender, and :mod:`cirno_sdk.ordering` merges the two. The sync cursor is only moved by
the index itself, never by a push, so a push lost in flight is still found by the next
sync. The ack, by contrast, is the newest *delivered* message (DESIGN.md §3): a brand-new
store on the same device starts after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from types import TracebackType

from google.protobuf.message import Message as ProtoMessage

from cirno_sdk.acks import AckBatcher
from cirno_sdk.backoff import Backoff
from cirno_sdk.convert import group_info, member, push_to_message
from cirno_sdk.errors import (
    CirnoError,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    DeadlineExceeded,
    KickedOut,
    LoginRefused,
    RateLimited,
    RequestRefused,
    RequestTimeout,
    SendRefused,
    StatusError,
    is_retryable,
)
from cirno_sdk.models import (
    Direction,
    Disconnected,
    Event,
    GroupEvent,
    GroupInfo,
    Member,
    Message,
    Reconnected,
    Sent,
)
from cirno_sdk.models import KickedOut as KickedOutEvent
from cirno_sdk.options import ClientOptions
from cirno_sdk.ordering import Orderer
from cirno_sdk.store import MemoryStore, Store
from cirno_sdk.sync import error_text, sync_inbox
from cirno_sdk.targets import Target, Targets, Token
from cirno_sdk.transport import ABNORMAL_CLOSURE, Transport, TransportClosed, open_transport
from data_plane.wire import (
    BasicCode,
    BasicPacket,
    Command,
    Flag,
    LogicPacket,
    MessageType,
    ProtocolError,
    Status,
    decode_packet,
    pb,
)

log = logging.getLogger("cirno_sdk")

SDK_VERSION = "cirno-sdk-py/0.1.0"
KICKED_OUT_CLOSE = 4002
ACK_RETRY_PAUSE = 0.5
UNAUTHORIZED_CLOSE = 4001


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
        self._targets = Targets(url)
        self._token = token
        self._device = device
        self._client_version = client_version
        self._options = options or ClientOptions()
        self._store: Store = store if store is not None else MemoryStore()
        opts = self._options
        self._backoff = Backoff(
            initial=opts.backoff_initial,
            maximum=opts.backoff_max,
            multiplier=opts.backoff_multiplier,
            jitter=opts.backoff_jitter,
        )
        self._orderer = Orderer(is_known=self._store.contains, gap_wait=opts.gap_wait)
        self._acks = AckBatcher(interval=opts.ack_interval / 1000, every=opts.ack_every)
        self.account = ""
        self.channel_id = ""
        self._transport: Transport | None = None
        self._online = False
        self._stop_error: CirnoError | None = None
        self._changed = asyncio.Event()
        self._sequence = 0
        self._waiters: dict[int, asyncio.Future[LogicPacket]] = {}
        self._messages: asyncio.Queue[Message | None] = asyncio.Queue()
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._sync_wanted = asyncio.Event()
        self._ack_wake = asyncio.Event()
        self._gap_wake = asyncio.Event()
        self._kicked: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._logins = 0
        self._syncs_requested = 0
        self._syncs_finished = 0

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
    def store(self) -> Store:
        """The local store of delivered messages."""
        return self._store

    @property
    def stopped(self) -> bool:
        """Whether the client has stopped for good (closed, kicked out, login refused)."""
        return self._stop_error is not None

    @property
    def online(self) -> bool:
        """Whether the client is connected and logged in right now."""
        return self._online

    async def connect(self) -> None:
        """Connect and log in; retries unreachable gateways until
        ``first_connect_deadline``. Raises :class:`LoginRefused` for a refused token,
        :class:`ConnectFailed` when no login succeeded in time."""
        if self._runner is not None:
            raise RuntimeError("connect() was already called")
        self._runner = asyncio.create_task(self._run(), name="cirno-sdk-runner")
        loop = asyncio.get_running_loop()
        try:
            await self._wait_online(loop.time() + self._options.first_connect_deadline)
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
        if self._online and self._acks.pending:
            await self._flush_ack(timeout=1.0)
        self._stop(ClientClosed("the client was closed"))
        transport = self._transport
        if transport is not None:
            transport.close(1000, "client closed")
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    def _is_stopped(self) -> bool:
        return self._stop_error is not None

    def _stop(self, error: CirnoError) -> None:
        """Enter the final state: no reconnect, iterators end, waiters fail."""
        if self._stop_error is not None:
            return
        self._stop_error = error
        self._online = False
        self._messages.put_nowait(None)
        self._events.put_nowait(None)
        self._fail_waiters(error)
        self._pulse()

    def _pulse(self) -> None:
        """Wake everything waiting for a state change."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_online(self, deadline: float) -> Transport:
        """The live transport once logged in; raises the stop error or DeadlineExceeded."""
        loop = asyncio.get_running_loop()
        while True:
            if self._stop_error is not None:
                raise self._stop_error
            if self._runner is None:
                raise ClientClosed("not connected: use `async with Client(...)` or connect()")
            transport = self._transport
            if self._online and transport is not None and not transport.closed:
                return transport
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceeded("not connected before the deadline")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    # -- the runner ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_sessions()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("cirno_sdk client stopped by an unexpected error")
            self._stop(ClientClosed(f"internal error: {exc!r}"))

    async def _run_sessions(self) -> None:
        while not self._is_stopped():
            try:
                url = await self._targets.next_url()
                transport = await open_transport(
                    url,
                    timeout=self._options.connect_timeout,
                    max_packet_size=self._options.max_packet_size,
                )
            except ConnectFailed as exc:
                log.info("connect failed: %s", exc)
                self._targets.failed()
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self._transport = transport
            try:
                code, reason = await self._session(transport)
            finally:
                self._online = False
                self._transport = None
                self._fail_waiters(ConnectionLost("the connection ended"))
                self._pulse()
                self._targets.failed()
            if self._is_stopped():
                return
            if self._kicked is not None or code == KICKED_OUT_CLOSE:
                self._emit(KickedOutEvent(self._kicked or self.channel_id))
                self._emit(Disconnected(code, reason, will_reconnect=False))
                self._stop(KickedOut(f"kicked out: {reason}"))
                return
            self._emit(Disconnected(code, reason, will_reconnect=True))
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self, transport: Transport) -> tuple[int, str]:
        """Log in on ``transport`` and serve it until it ends; returns the close."""
        self._orderer.start_sync()  # pushes after the login wait for the first sync
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(self._read_loop(transport))
            if not await self._login(transport):
                transport.abort()
                return await reader
            helpers = [
                tg.create_task(self._sync_loop(transport)),
                tg.create_task(self._ack_loop()),
                tg.create_task(self._ping_loop(transport)),
                tg.create_task(self._gap_loop()),
            ]
            try:
                return await reader
            finally:
                for helper in helpers:
                    helper.cancel()

    async def _login(self, transport: Transport) -> bool:
        """Send ``login.signin``; True when logged in. A refused login stops the client."""
        token = self._token if isinstance(self._token, str) else await self._token()
        req = pb.LoginReq(token=token, device=self._device, client_version=self._client_version)
        try:
            packet = await self._request(
                transport, Command.LOGIN_SIGNIN, req, timeout=self._options.response_timeout
            )
        except (RequestTimeout, ConnectionLost) as exc:
            log.info("login did not complete: %s", exc)
            return False
        if packet.status != Status.SUCCESS:
            error = LoginRefused(packet.status, error_text(packet))
            # A refused token is final. Other refusals (quota, ...) fail a first connect
            # at once; once we have been in, they are retried with back-off, like 3xx.
            final = self._logins == 0 and not is_retryable(packet.status)
            if packet.status == Status.UNAUTHORIZED or final:
                self._emit(Disconnected(UNAUTHORIZED_CLOSE, str(error), will_reconnect=False))
                self._stop(error)
            return False
        resp = packet.parse_body(pb.LoginResp)
        self.account = resp.account
        self.channel_id = resp.channelId
        self._logins += 1
        self._online = True
        self._sync_wanted.set()
        self._pulse()
        if self._logins > 1:
            self._emit(Reconnected(resp.account, resp.channelId, self._backoff.attempts))
        self._backoff.reset()
        return True

    # -- reading -------------------------------------------------------------------------

    async def _read_loop(self, transport: Transport) -> tuple[int, str]:
        timeout = self._options.read_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    raw = await transport.receive()
            except TimeoutError:
                transport.abort()
                return ABNORMAL_CLOSURE, f"no frame for {timeout:g} s"
            except TransportClosed as closed:
                return closed.code, closed.reason
            try:
                packet = decode_packet(raw, max_size=self._options.max_packet_size)
            except ProtocolError as exc:
                transport.close(1002, exc.close_reason)
                return 1002, exc.close_reason
            if isinstance(packet, BasicPacket):
                if packet.code == BasicCode.PING:
                    transport.send(BasicPacket.pong(packet.body).encode())
                continue
            if packet.flag == Flag.RESPONSE:
                waiter = self._waiters.pop(packet.sequence, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(packet)
            elif packet.flag == Flag.PUSH:
                try:
                    self._on_push(packet)
                except ProtocolError as exc:
                    log.warning("ignoring a malformed %s push: %s", packet.command, exc)

    def _on_push(self, packet: LogicPacket) -> None:
        command = packet.command
        if command in (Command.CHAT_USER_TALK, Command.CHAT_GROUP_TALK):
            message = push_to_message(packet, self.account)
            self._deliver(self._orderer.push(message))
            if self._orderer.wants_sync:
                self._sync_wanted.set()
            self._gap_wake.set()
        elif command == Command.LOGIN_SIGNIN:
            self._kicked = packet.parse_body(pb.KickoutNotify).channelId
        elif command == Command.CHAT_GROUP_CREATE:
            created = packet.parse_body(pb.GroupCreateNotify)
            self._orderer.group_created(created.group_id)
            self._emit(GroupEvent("created", created.group_id, tuple(created.members)))
        elif command in (Command.CHAT_GROUP_JOIN, Command.CHAT_GROUP_QUIT):
            joined = command == Command.CHAT_GROUP_JOIN
            body: pb.GroupJoinNotify | pb.GroupQuitNotify
            if joined:
                body = packet.parse_body(pb.GroupJoinNotify)
            else:
                body = packet.parse_body(pb.GroupQuitNotify)
            if body.account == self.account:
                self._orderer.reset_group(body.group_id)
            kind = "joined" if joined else "quit"
            self._emit(GroupEvent(kind, body.group_id, (body.account,)))

    def _deliver(self, messages: list[Message]) -> None:
        """Store, queue for :meth:`messages`, and count towards the next ack."""
        for message in messages:
            if self._store.add(message):
                self._messages.put_nowait(message)
                if self._acks.stored(message.message_id):
                    self._ack_wake.set()
        if messages:
            self._ack_wake.set()

    def _emit(self, event: Event) -> None:
        self._events.put_nowait(event)
        callback = self._options.on_event
        if callback is not None:
            try:
                callback(event)
            except Exception:
                log.exception("on_event callback failed")

    # -- requests ------------------------------------------------------------------------

    def _fail_waiters(self, error: CirnoError) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(error)

    async def _request(
        self,
        transport: Transport,
        command: str,
        body: ProtoMessage,
        *,
        dest: str = "",
        timeout: float,
    ) -> LogicPacket:
        """One request on ``transport``: its response packet (any status).

        Raises :class:`RequestTimeout` or :class:`ConnectionLost`.
        """
        if transport is not self._transport or transport.closed:
            raise ConnectionLost("the connection has ended")
        self._sequence = self._sequence % 0xFFFFFFFF + 1
        sequence = self._sequence
        waiter: asyncio.Future[LogicPacket] = asyncio.get_running_loop().create_future()
        self._waiters[sequence] = waiter
        try:
            transport.send(
                LogicPacket.request(command, body, sequence=sequence, dest=dest).encode()
            )
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError as exc:
            raise RequestTimeout(f"no response to {command} within {timeout:g} s") from exc
        finally:
            if self._waiters.get(sequence) is waiter:
                del self._waiters[sequence]

    async def _call(
        self,
        command: str,
        body: ProtoMessage,
        *,
        dest: str = "",
        deadline: float,
        retry_unanswered: bool = True,
        refused: type[StatusError] = RequestRefused,
    ) -> LogicPacket:
        """A request that waits for the connection and retries until ``deadline``.

        Retries after a lost connection or a response timeout (only when
        ``retry_unanswered``: the request may have been carried out) and on 3xx
        statuses. Raises ``refused`` for 1xx/4xx statuses.
        """
        loop = asyncio.get_running_loop()
        timeout = self._options.response_timeout
        pause = 0.05
        while True:
            transport = await self._wait_online(deadline)
            remaining = deadline - loop.time()
            try:
                packet = await self._request(
                    transport, command, body, dest=dest, timeout=min(timeout, remaining)
                )
            except (RequestTimeout, ConnectionLost):
                if not retry_unanswered or loop.time() >= deadline:
                    raise
                timeout *= 2
                continue
            if packet.status == Status.SUCCESS:
                return packet
            if not is_retryable(packet.status):
                if refused is SendRefused and packet.status == Status.RATE_LIMITED:
                    raise RateLimited(packet.status, error_text(packet))
                raise refused(packet.status, error_text(packet))
            if loop.time() + pause >= deadline:
                raise DeadlineExceeded(f"{command} kept failing with status {packet.status}")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

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
        if self._runner is None:
            raise ClientClosed("not connected: use `async with Client(...)` or connect()")
        client_msg_id = uuid.uuid4().hex
        req = pb.MessageReq(type=type, body=body, extra=extra, client_msg_id=client_msg_id)
        command = Command.CHAT_GROUP_TALK if group else Command.CHAT_USER_TALK
        deadline = asyncio.get_running_loop().time() + self._options.send_deadline
        try:
            packet = await self._call(command, req, dest=to, deadline=deadline, refused=SendRefused)
        except (RequestTimeout, ConnectionLost) as exc:
            raise DeadlineExceeded(f"message {client_msg_id} not confirmed in time") from exc
        resp = packet.parse_body(pb.MessageResp)
        own = Message(
            message_id=resp.messageId,
            sender=self.account,
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
        if self._store.add(own) and group:
            self._deliver(self._orderer.own_sent(to, resp.messageId, resp.seq))
        elif not group:
            self._orderer.own_inbox(resp.inbox_seq)
        return Sent(resp.messageId, resp.sendTime, client_msg_id, resp.seq if group else 0)

    async def sync(self, *, timeout: float | None = None) -> None:
        """Run an offline sync now and return once a sync that started after this call
        has finished (everything committed before the call is then delivered).

        Waits for the connection (reconnecting as usual) until ``timeout`` (default
        ``request_deadline``), then raises :class:`DeadlineExceeded`; raises the stop
        error once the client has stopped.
        """
        if self._runner is None:
            raise ClientClosed("not connected: use `async with Client(...)` or connect()")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._options.request_deadline if timeout is None else timeout)
        self._syncs_requested += 1
        wanted = self._syncs_requested
        self._sync_wanted.set()
        while self._syncs_finished < wanted:
            if self._stop_error is not None:
                raise self._stop_error
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceeded("the sync did not finish before the deadline")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    # -- receiving -----------------------------------------------------------------------

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming messages (and our own from other devices), each once, in order; ends
        when the client stops. Meant for one consumer."""
        while True:
            message = await self._messages.get()
            if message is None:
                self._messages.put_nowait(None)
                return
            yield message

    async def events(self) -> AsyncIterator[Event]:
        """Connection and group events; ends when the client stops. One consumer."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)
                return
            yield event

    # -- session helpers -----------------------------------------------------------------

    async def _sync_loop(self, transport: Transport) -> None:
        timeout = self._options.response_timeout

        async def request(command: str, body: ProtoMessage) -> LogicPacket:
            return await self._request(transport, command, body, timeout=timeout)

        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            generation = self._syncs_requested
            self._orderer.start_sync()
            try:
                await sync_inbox(
                    request,
                    self._store,
                    self._orderer,
                    self._deliver,
                    me=self.account,
                    content_batch=self._options.content_batch,
                )
            except CirnoError as exc:
                # Without a complete sync the order cannot be vouched for: start over on
                # a new connection (buffered pushes wait for that sync).
                log.warning("offline sync failed, reconnecting: %s", exc)
                transport.abort()
                return
            self._deliver(self._orderer.finish_sync())
            self._gap_wake.set()
            self._syncs_finished = max(self._syncs_finished, generation)
            self._pulse()
            if self._orderer.wants_sync:
                self._sync_wanted.set()

    async def _ack_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._acks.due():
                if not await self._flush_ack(timeout=self._options.response_timeout):
                    await asyncio.sleep(ACK_RETRY_PAUSE)
                continue
            deadline = self._acks.deadline()
            self._ack_wake.clear()
            wait = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._ack_wake.wait()

    async def _flush_ack(self, *, timeout: float) -> bool:
        """Ack the newest stored message now; True when the server took it (or refused
        it for good). On failure the id stays pending for the next try."""
        message_id = self._acks.take()
        if not message_id:
            return True
        transport = self._transport
        try:
            if transport is None:
                raise ConnectionLost("not connected")
            packet = await self._request(
                transport,
                Command.CHAT_TALK_ACK,
                pb.MessageAckReq(messageId=message_id),
                timeout=timeout,
            )
        except CirnoError:
            self._acks.failed(message_id)
            return False
        if packet.status == Status.SUCCESS:
            self._store.set_acked_id(message_id)
        elif is_retryable(packet.status):
            self._acks.failed(message_id)
            return False
        else:
            log.warning("ack of %d refused: %s", message_id, error_text(packet))
        return True

    async def _ping_loop(self, transport: Transport) -> None:
        ping = BasicPacket.ping().encode()
        while True:
            await asyncio.sleep(self._options.ping_interval)
            transport.send(ping)

    async def _gap_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._gap_wake.clear()
            self._deliver(self._orderer.expire())
            deadline = self._orderer.next_deadline()
            wait = None if deadline is None else max(0.01, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._gap_wake.wait()

    # -- groups --------------------------------------------------------------------------

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._options.request_deadline

    async def create_group(
        self, name: str, members: list[str], *, avatar: str = "", introduction: str = ""
    ) -> str:
        """Create a group owned by this account (always a member); returns its id.

        Not retried after a lost response (a retry could create a second group).
        """
        req = pb.GroupCreateReq(
            name=name, avatar=avatar, introduction=introduction, members=members
        )
        packet = await self._call(
            Command.CHAT_GROUP_CREATE, req, deadline=self._deadline(), retry_unanswered=False
        )
        group_id = packet.parse_body(pb.GroupCreateResp).group_id
        self._orderer.group_created(group_id)
        return group_id

    async def join_group(self, group_id: str, account: str = "") -> None:
        """Add ``account`` (default: this account) to the group."""
        req = pb.GroupJoinReq(account=account, group_id=group_id)
        await self._call(Command.CHAT_GROUP_JOIN, req, deadline=self._deadline())
        if not account or account == self.account:
            self._orderer.reset_group(group_id)

    async def quit_group(self, group_id: str, account: str = "") -> None:
        """Remove ``account`` (default: this account) from the group."""
        req = pb.GroupQuitReq(account=account, group_id=group_id)
        await self._call(Command.CHAT_GROUP_QUIT, req, deadline=self._deadline())
        if not account or account == self.account:
            self._orderer.reset_group(group_id)

    async def group_detail(self, group_id: str) -> GroupInfo:
        """The group's name, owner, members, ..."""
        packet = await self._call(
            Command.CHAT_GROUP_DETAIL, pb.GroupGetReq(group_id=group_id), deadline=self._deadline()
        )
        return group_info(packet.parse_body(pb.GroupGetResp))

    async def group_members(self, group_id: str) -> list[Member]:
        """All of the group's members, by join time (fetched page by page)."""
        members: list[Member] = []
        while True:
            packet = await self._call(
                Command.CHAT_GROUP_MEMBERS,
                pb.GroupGetReq(group_id=group_id, offset=len(members)),
                deadline=self._deadline(),
            )
            page = packet.parse_body(pb.GroupMembersResp)
            members.extend(member(m) for m in page.members)
            if not page.has_more or not page.members:
                return members
