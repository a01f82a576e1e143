"""A receiver that behaves like kim's web SDK, for ``cirno verify --receivers kim``.

kim clients (``kim_web_sdk``, ``src/sdk.ts``) cannot fill gaps: they know nothing of
inbox sequences and trust the server's read position. This receiver copies what they
do, over the raw kim protocol on a WebSocket (no ``cirno_sdk``), so the harness can
check the promise for them:

- log in with ``login.signin`` carrying the token only (no ``client_version``);
- a push (``chat.user.talk`` / ``chat.group.talk``) whose message id it already has is
  dropped; any other is kept and becomes the *newest received push*;
- every ``ack_interval`` seconds (kim: 3 s) ack the newest received push since the last
  ack with ``chat.talk.ack`` and remember it as the last acked id;
- at each login, and once more at the end, page ``chat.offline.index`` from
  ``message_id`` = the last acked id until a page comes back empty, then fetch the
  contents (``chat.offline.content``) of the ids it does not have yet, in index order;
- never anything else: no gap detection, no periodic pull, no re-sync on an ack.

When the connection is lost it logs in again on the next gateway of its list (after
``retry_delay``), as an application using kim's SDK would. Every message it takes is
recorded once, with the time it arrived (``loop.time()``), as a
:class:`~cirno_sdk.Message` whose ``client_msg_id`` is set for pushes and empty for
synced messages (how the checker tells the two apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from google.protobuf.message import Message as ProtoMessage

from cirno_sdk import Direction, Message
from cirno_sdk.errors import CirnoError
from cirno_sdk.transport import Transport, TransportClosed, open_transport
from data_plane.wire import (
    BasicCode,
    BasicPacket,
    Command,
    Flag,
    LogicPacket,
    ProtocolError,
    Status,
    decode_packet,
    pb,
)

log = logging.getLogger("cirno.verify")

REQUEST_TIMEOUT = 5.0
PING_INTERVAL = 30.0


class KimError(Exception):
    """A request failed (refused, unanswered, or the connection ended)."""


class KimReceiver:
    """One kim-style receiving client; :meth:`run` until told to stop."""

    def __init__(
        self,
        account: str,
        urls: list[str],
        token: str,
        *,
        ack_interval: float = 3.0,
        retry_delay: float = 0.5,
    ) -> None:
        self.account = account
        self.deliveries: list[Message] = []
        self.arrivals: list[float] = []
        self.logins = 0
        self.acked_id = 0
        self._urls = urls
        self._token = token
        self._ack_interval = ack_interval
        self._retry_delay = retry_delay
        self._seen: set[int] = set()
        self._newest_push = 0
        self._transport: Transport | None = None
        self._online = asyncio.Event()
        self._sequence = 0
        self._waiters: dict[int, asyncio.Future[LogicPacket]] = {}

    # -- the connection loop -------------------------------------------------------------

    async def run(self) -> None:
        """Connect, log in, sync, take pushes and ack; reconnect when the connection
        ends. Runs until cancelled."""
        attempt = 0
        while True:
            url = self._urls[attempt % len(self._urls)]
            attempt += 1
            try:
                transport = await open_transport(url, timeout=3.0)
            except CirnoError as exc:
                log.info("kim %s: connect to %s failed: %s", self.account, url, exc)
                await asyncio.sleep(self._retry_delay)
                continue
            try:
                await self._session(transport)
            finally:
                self._online.clear()
                self._transport = None
                transport.abort()
                self._fail_waiters()
            await asyncio.sleep(self._retry_delay)

    async def _session(self, transport: Transport) -> None:
        self._transport = transport
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(self._read_loop(transport))
            try:
                answer = await self._request(Command.LOGIN_SIGNIN, pb.LoginReq(token=self._token))
            except KimError as exc:
                log.info("kim %s: login failed: %s", self.account, exc)
                reader.cancel()
                return
            if answer.status != Status.SUCCESS:
                log.info("kim %s: login refused (%d)", self.account, answer.status)
                reader.cancel()
                return
            self.logins += 1
            self._online.set()
            helpers = [
                tg.create_task(self._ack_loop()),
                tg.create_task(self._ping_loop(transport)),
            ]
            try:
                await self.sync()  # kim's loadOfflineMessage after every login
            except KimError as exc:
                log.info("kim %s: sync after login failed: %s", self.account, exc)
                transport.abort()
            try:
                await reader
            finally:
                for helper in helpers:
                    helper.cancel()

    async def _read_loop(self, transport: Transport) -> None:
        while True:
            try:
                raw = await transport.receive()
            except TransportClosed:
                return
            try:
                packet = decode_packet(raw)
            except ProtocolError:
                transport.abort()
                return
            if isinstance(packet, BasicPacket):
                if packet.code == BasicCode.PING:
                    transport.send(BasicPacket.pong(packet.body).encode())
                continue
            if packet.flag == Flag.RESPONSE:
                waiter = self._waiters.pop(packet.sequence, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(packet)
            elif packet.flag == Flag.PUSH and packet.command in (
                Command.CHAT_USER_TALK,
                Command.CHAT_GROUP_TALK,
            ):
                self._on_push(packet)

    def _on_push(self, packet: LogicPacket) -> None:
        push = packet.parse_body(pb.MessagePush)
        if push.messageId in self._seen:
            return  # kim: Store.exist(messageId)
        self._newest_push = push.messageId
        self._take(
            Message(
                message_id=push.messageId,
                sender=push.sender,
                to="" if push.group else self.account,
                group=push.group,
                type=push.type,
                body=push.body,
                extra=push.extra,
                send_time=push.sendTime,
                seq=push.seq,
                client_msg_id=push.client_msg_id or "push",
            )
        )

    def _take(self, message: Message) -> None:
        self._seen.add(message.message_id)
        self.deliveries.append(message)
        self.arrivals.append(asyncio.get_running_loop().time())

    async def _ack_loop(self) -> None:
        # kim's messageAckLoop: the newest push since the last ack, every ~3 s.
        while True:
            await asyncio.sleep(self._ack_interval)
            newest = self._newest_push
            if not newest:
                continue
            self._newest_push = 0
            try:
                answer = await self._request(
                    Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=newest)
                )
            except KimError:
                continue  # kim sends the ack and moves on without a response
            if answer.status == Status.SUCCESS:
                self.acked_id = newest

    async def _ping_loop(self, transport: Transport) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            transport.send(BasicPacket.ping().encode())

    # -- requests ------------------------------------------------------------------------

    async def _request(self, command: str, body: ProtoMessage) -> LogicPacket:
        transport = self._transport
        if transport is None or transport.closed:
            raise KimError("not connected")
        self._sequence = self._sequence % 0xFFFFFFFF + 1
        sequence = self._sequence
        waiter: asyncio.Future[LogicPacket] = asyncio.get_running_loop().create_future()
        self._waiters[sequence] = waiter
        transport.send(LogicPacket.request(command, body, sequence=sequence).encode())
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await waiter
        except TimeoutError as exc:
            raise KimError(f"no answer to {command}") from exc
        finally:
            self._waiters.pop(sequence, None)

    def _fail_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(KimError("the connection ended"))

    # -- offline sync --------------------------------------------------------------------

    async def sync(self) -> None:
        """kim's loadOfflineMessage: index pages after the last acked id, then the
        contents of what is new. Raises :class:`KimError`."""
        cursor = self.acked_id
        entries: list[pb.MessageIndex] = []
        while True:
            answer = await self._request(
                Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=cursor)
            )
            if answer.status != Status.SUCCESS:
                raise KimError(f"chat.offline.index answered {answer.status}")
            page = list(answer.parse_body(pb.MessageIndexResp).indexes)
            if not page:
                break
            entries.extend(page)
            cursor = page[-1].message_id
        wanted = [e for e in entries if e.message_id not in self._seen]
        for start in range(0, len(wanted), 100):
            batch = wanted[start : start + 100]
            answer = await self._request(
                Command.CHAT_OFFLINE_CONTENT,
                pb.MessageContentReq(message_ids=[e.message_id for e in batch]),
            )
            if answer.status != Status.SUCCESS:
                raise KimError(f"chat.offline.content answered {answer.status}")
            contents = {c.messageId: c for c in answer.parse_body(pb.MessageContentResp).contents}
            for entry in batch:
                content = contents.get(entry.message_id)
                if content is None or entry.message_id in self._seen:
                    continue
                sent = entry.direction == Direction.SENT
                self._take(
                    Message(
                        message_id=entry.message_id,
                        sender=self.account if sent else entry.accountB,
                        to=entry.accountB if sent else self.account,
                        group=entry.group,
                        type=content.type,
                        body=content.body,
                        extra=content.extra,
                        send_time=entry.send_time,
                        direction=Direction.SENT if sent else Direction.RECEIVED,
                    )
                )

    async def final_sync(self, timeout: float) -> None:
        """The sync at the end, once connected (waiting up to ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            while True:
                await self._online.wait()
                with contextlib.suppress(KimError):
                    await self.sync()
                    return
                await asyncio.sleep(0.5)
