"""Sync, ack and gap filling: from pushes and offline pages to the application, once.

:class:`Delivery` is the part of the client between the connection and the store. The
session runner feeds it every push and runs :meth:`Delivery.serve` for each logged-in
connection; the public API tells it about its own sends and group changes.

Guarantees
----------
- **Exactly once to the application.** A message reaches the message feed only when
  the store takes it for the first time (``Store.add`` is true), so a message pushed
  and synced, synced twice, or resent after a reconnect is delivered once.
- **Store before feed.** The store holds a message before the application sees it; the
  ack follows the store, so an acked message is always stored.
- **Order.** Order is the inbox's, never message-id order (ids are only time-ordered
  per logic node): the offline sync walks the inbox by the server's cursor, pushes
  arrive in commit order per sender, and the :class:`~cirno_sdk.ordering.Orderer`
  merges the two; a group message waits for the earlier ones of its group.
- **Gap filling by inbox_seq.** A 1:1 push whose ``inbox_seq`` is beyond the next
  expected one means an earlier push was lost: it and later pushes wait while a sync
  fetches the missing ones, which are delivered first. A group gap likewise asks for a
  sync; a group message still held after ``gap_wait`` is released by the gap timer.
- **The sync cursor moves only by the index**, never by a push, so a push lost in
  flight is found by the next sync. A sync that fails aborts the connection: without a
  complete sync the order cannot be vouched for, so a new connection syncs again.
- **Idle pull.** While connected, a sync also starts after ``pull_interval`` (jittered)
  without a push or a sync (:class:`~cirno_sdk.pull.IdlePull`), so a lost push that no
  later push reveals is late by at most that long. It goes through the same sync loop
  as every other sync, so it keeps the guarantees above (a message it finds is
  delivered once, in inbox order).
- **Lazy contents.** With ``lazy`` (``ClientOptions(content="lazy")``, the default)
  the sync stores and delivers index entries only (:mod:`cirno_sdk.sync`); a later
  push of a message stored without its content fills it in (``Store.fill``), and a
  recall push turns a stored message into its tombstone (``Store.recall``).
- **Batched ack.** The ack is the newest *delivered* message (``ack_every`` messages or
  ``ack_interval`` after the first unacknowledged one); a failed ack stays pending and
  is retried, so a brand-new store on the same device starts after it.

Time (ack, gap and pull deadlines) comes from the injected clock that the orderer, the
ack batcher and the idle pull also use. The loops sleep until the next deadline; a test
that moves the clock calls :meth:`Delivery.clock_moved` so they recheck at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from google.protobuf.message import Message as ProtoMessage

from cirno_sdk.acks import AckBatcher
from cirno_sdk.convert import push_to_message
from cirno_sdk.errors import CirnoError, ConnectionLost, is_retryable
from cirno_sdk.feeds import Feeds
from cirno_sdk.groups import ADMIN_NOTIFIES, admin_event
from cirno_sdk.link import Clock, Link
from cirno_sdk.models import ConversationKind, GroupEvent, Message, ReadEvent, RecallEvent
from cirno_sdk.ordering import Orderer
from cirno_sdk.pull import IdlePull
from cirno_sdk.store import Store
from cirno_sdk.sync import error_text, sync_inbox
from cirno_sdk.transport import Transport
from data_plane.wire import Command, LogicPacket, Status, pb

log = logging.getLogger("cirno_sdk")

ACK_RETRY_PAUSE = 0.5


class Delivery:
    """The syncer, the acker and the gap timer of one client, and its push handler."""

    def __init__(
        self,
        link: Link,
        feeds: Feeds,
        store: Store,
        orderer: Orderer,
        acks: AckBatcher,
        pull: IdlePull,
        *,
        response_timeout: float,
        content_batch: int,
        lazy: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self._link = link
        self._feeds = feeds
        self._store = store
        self._orderer = orderer
        self._acks = acks
        self._pull = pull
        self._response_timeout = response_timeout
        self._content_batch = content_batch
        self._lazy = lazy
        self._clock = clock
        self._sync_wanted = asyncio.Event()
        self._ack_wake = asyncio.Event()
        self._gap_wake = asyncio.Event()
        self._pull_wake = asyncio.Event()
        self._syncs_requested = 0
        self._syncs_finished = 0

    # -- what the session runner calls ---------------------------------------------------

    def session_starting(self) -> None:
        """A connection is about to log in: pushes wait for its first sync."""
        self._orderer.start_sync()

    def logged_in(self) -> None:
        """The connection is logged in: sync what was missed."""
        self._sync_wanted.set()

    async def serve(self, transport: Transport) -> None:
        """Run the syncer, the acker and the gap timer for ``transport`` until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._sync_loop(transport))
            tg.create_task(self._ack_loop())
            tg.create_task(self._gap_loop())
            if self._pull.enabled:
                tg.create_task(self._pull_loop())

    def on_push(self, packet: LogicPacket) -> None:
        """A message, group, read or recall push (kick-outs are the runner's). Raises
        ProtocolError for a malformed body. Read and recall notices carry no inbox
        sequence: they never touch the order keeper."""
        command = packet.command
        if command in (Command.CHAT_USER_TALK, Command.CHAT_GROUP_TALK):
            message = push_to_message(packet, self._link.account)
            self._store.fill(message)  # stored by a lazy sync: the push has the body
            self._pull.activity()
            self._deliver(self._orderer.push(message))
            if self._orderer.wants_sync:
                self._sync_wanted.set()
            self._gap_wake.set()
        elif command == Command.CHAT_GROUP_CREATE:
            created = packet.parse_body(pb.GroupCreateNotify)
            self._orderer.group_created(created.group_id)
            self._feeds.emit(GroupEvent("created", created.group_id, tuple(created.members)))
        elif command in (Command.CHAT_GROUP_JOIN, Command.CHAT_GROUP_QUIT):
            joined = command == Command.CHAT_GROUP_JOIN
            body: pb.GroupJoinNotify | pb.GroupQuitNotify
            if joined:
                body = packet.parse_body(pb.GroupJoinNotify)
            else:
                body = packet.parse_body(pb.GroupQuitNotify)
            if body.account == self._link.account:
                self._orderer.reset_group(body.group_id)
            kind = "joined" if joined else "quit"
            self._feeds.emit(GroupEvent(kind, body.group_id, (body.account,)))
        elif command == Command.CHAT_READ:
            read = packet.parse_body(pb.ReadNotify)
            self._feeds.emit(
                ReadEvent(
                    read.reader,
                    ConversationKind(read.kind),
                    read.peer,
                    read.message_id,
                    read.unread,
                )
            )
        elif command == Command.CHAT_RECALL:
            recall = packet.parse_body(pb.RecallNotify)
            self._store.recall(recall.message_id)
            self._feeds.emit(
                RecallEvent(
                    recall.message_id,
                    recall.sender,
                    recall.group,
                    recall.recalled_at,
                    recall.recalled_by,
                )
            )
        elif command in ADMIN_NOTIFIES:
            event = admin_event(packet)
            if event.kind == "dismissed":
                self._orderer.reset_group(event.group_id)
            self._feeds.emit(event)

    # -- what the public API calls -------------------------------------------------------

    def record_sent(self, own: Message, *, group: bool) -> None:
        """Our own message, confirmed by the server: store it and keep the order's
        counts (a group message fills its own slot in the group sequence)."""
        if self._store.add(own) and group:
            self._deliver(self._orderer.own_sent(own.group, own.message_id, own.seq))
        elif not group:
            self._orderer.own_inbox(own.inbox_seq)

    def group_created(self, group_id: str) -> None:
        """We created ``group_id``: its sequence starts at 1."""
        self._orderer.group_created(group_id)

    def reset_group(self, group_id: str) -> None:
        """We joined or left ``group_id``: forget what was known of its sequence."""
        self._orderer.reset_group(group_id)

    async def sync(self, deadline: float) -> None:
        """Ask for a sync and return once a sync started after this call has finished."""
        self._syncs_requested += 1
        wanted = self._syncs_requested
        self._sync_wanted.set()
        await self._link.wait_until(
            lambda: self._syncs_finished >= wanted,
            deadline,
            "the sync did not finish before the deadline",
        )

    def clock_moved(self) -> None:
        """The injected clock jumped (tests): every timer rechecks its deadline now."""
        for wake in (self._ack_wake, self._gap_wake, self._pull_wake):
            wake.set()

    @property
    def ack_pending(self) -> bool:
        """Whether a delivered message has not been acknowledged yet."""
        return bool(self._acks.pending)

    async def flush_ack(self, *, timeout: float) -> bool:
        """Ack the newest stored message now; True when the server took it (or refused
        it for good). On failure the id stays pending for the next try."""
        message_id = self._acks.take()
        if not message_id:
            return True
        transport = self._link.transport
        try:
            if transport is None:
                raise ConnectionLost("not connected")
            packet = await self._link.request(
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

    # -- the loops -----------------------------------------------------------------------

    def _deliver(self, messages: list[Message]) -> None:
        """Store, queue for the application, and count towards the next ack."""
        for message in messages:
            if self._store.add(message):
                self._feeds.message(message)
                if self._acks.stored(message.message_id):
                    self._ack_wake.set()
        if messages:
            self._ack_wake.set()

    async def _sync_loop(self, transport: Transport) -> None:
        timeout = self._response_timeout

        async def request(command: str, body: ProtoMessage) -> LogicPacket:
            return await self._link.request(transport, command, body, timeout=timeout)

        catch_up = True  # this connection's first sync: the login catch-up
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
                    me=self._link.account,
                    content_batch=self._content_batch,
                    # Only the catch-up is lazy: a later sync (a gap fill, the idle
                    # pull) finds live messages whose push went missing, and loads them.
                    lazy=self._lazy and catch_up,
                )
            except CirnoError as exc:
                # Without a complete sync the order cannot be vouched for: start over on
                # a new connection (buffered pushes wait for that sync).
                log.warning("offline sync failed, reconnecting: %s", exc)
                transport.abort()
                return
            self._deliver(self._orderer.finish_sync())
            catch_up = False
            self._gap_wake.set()
            self._syncs_finished = max(self._syncs_finished, generation)
            self._pull.activity()
            self._link.pulse()
            if self._orderer.wants_sync:
                self._sync_wanted.set()

    async def _ack_loop(self) -> None:
        while True:
            if self._acks.due():
                if not await self.flush_ack(timeout=self._response_timeout):
                    await asyncio.sleep(ACK_RETRY_PAUSE)
                continue
            deadline = self._acks.deadline()
            self._ack_wake.clear()
            wait = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._ack_wake.wait()

    async def _gap_loop(self) -> None:
        while True:
            self._gap_wake.clear()
            self._deliver(self._orderer.expire())
            deadline = self._orderer.next_deadline()
            wait = None if deadline is None else max(0.01, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._gap_wake.wait()

    async def _pull_loop(self) -> None:
        # Asks the sync loop for a sync when the idle pull is due; the sync loop's end
        # moves the next pull on (``activity``), so a slow sync is never doubled.
        while True:
            self._pull_wake.clear()
            if self._pull.due():
                log.debug("idle pull: no push for a while, syncing")
                self._pull.activity()
                self._sync_wanted.set()
            deadline = self._pull.deadline()
            wait = None if deadline is None else max(0.01, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._pull_wake.wait()
