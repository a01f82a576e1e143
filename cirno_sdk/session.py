"""The session runner: connect, log in, read, ping, and reconnect with back-off.

Theory of operation
-------------------
One *runner* task owns the connection's life: connect, log in, run a session, and after
the session ends wait a back-off delay and start again -- unless the client was kicked
out, its relogin was refused, or it was closed. The runner task is the client's only
root task (``Client.aclose`` cancels and awaits it); everything it starts lives in the
session's ``asyncio.TaskGroup``:

- the **reader** takes packets off the transport, answers server pings, hands each
  response to the :class:`~cirno_sdk.link.Link` (which wakes the request waiting for
  its sequence) and each push to the session's :class:`SessionParts` (message and
  group pushes) -- except a kick-out notice, which is the runner's; nothing at all for
  ``read_timeout`` seconds counts as a dead connection;
- the **pinger** sends a BasicPkt ping every ``ping_interval`` seconds;
- the parts' own tasks (sync, ack, gap timer; see :mod:`cirno_sdk.delivery`), started
  once the login succeeded.

Guarantees
----------
- One connection at a time: a new one is opened only after the previous session's
  tasks have all ended and the link has failed every request still waiting on it (the
  retrying calls then resend on the next connection, see :mod:`cirno_sdk.calls`).
- Gateways are tried in the targets' order, moving on after every failed or lost
  connection; reconnect delays follow the back-off and reset after each login.
- A refused token stops the client for good; other refusals fail a first connect at
  once and are retried later. A kick-out (notice or close code 4002) stops the client
  without reconnecting. Every end of a connection is reported as a ``Disconnected``
  event saying whether the client will reconnect; every later login as ``Reconnected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from cirno_sdk.backoff import Backoff
from cirno_sdk.errors import (
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    KickedOut,
    LoginRefused,
    RequestTimeout,
    is_retryable,
)
from cirno_sdk.feeds import Feeds
from cirno_sdk.link import Link
from cirno_sdk.models import Disconnected, Reconnected
from cirno_sdk.models import KickedOut as KickedOutEvent
from cirno_sdk.options import ClientOptions
from cirno_sdk.sync import error_text
from cirno_sdk.targets import Targets, Token
from cirno_sdk.transport import ABNORMAL_CLOSURE, Transport, TransportClosed, open_transport
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

log = logging.getLogger("cirno_sdk")

KICKED_OUT_CLOSE = 4002
UNAUTHORIZED_CLOSE = 4001


class SessionParts(Protocol):
    """What the runner needs from the rest of the client for each session."""

    def session_starting(self) -> None:
        """A connection is open and about to log in."""

    def logged_in(self) -> None:
        """The connection is logged in (the link says as whom)."""

    def on_push(self, packet: LogicPacket) -> None:
        """A push other than a kick-out; may raise ProtocolError for a malformed body."""

    async def serve(self, transport: Transport) -> None:
        """Work on the logged-in ``transport`` until cancelled."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who logs in: the token (or an async callable returning a fresh one), the device
    and the client version sent with every login."""

    token: Token
    device: str
    client_version: str

    async def login_request(self) -> pb.LoginReq:
        """The ``login.signin`` body, with a token fetched now if it is a callable."""
        token = self.token if isinstance(self.token, str) else await self.token()
        return pb.LoginReq(token=token, device=self.device, client_version=self.client_version)


class SessionRunner:
    """Connects, logs in and serves one connection after another until stopped."""

    def __init__(
        self,
        link: Link,
        feeds: Feeds,
        parts: SessionParts,
        targets: Targets,
        backoff: Backoff,
        credentials: Credentials,
        options: ClientOptions,
    ) -> None:
        self._link = link
        self._feeds = feeds
        self._parts = parts
        self._targets = targets
        self._backoff = backoff
        self._credentials = credentials
        self._options = options
        self._kicked: str | None = None
        self._logins = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the runner task (once)."""
        # The client's one root task: ``connect()`` returns while it runs, so no task
        # group of the caller can hold it; ``close()`` cancels and awaits it instead.
        self._task = asyncio.create_task(self._run(), name="cirno-sdk-runner")

    async def close(self) -> None:
        """Stop for good: close the connection and wait for the runner task to end."""
        self._link.stop(ClientClosed("the client was closed"))
        transport = self._link.transport
        if transport is not None:
            transport.close(1000, "client closed")
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the runner ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_sessions()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("cirno_sdk client stopped by an unexpected error")
            self._link.stop(ClientClosed(f"internal error: {exc!r}"))

    async def _run_sessions(self) -> None:
        link = self._link
        while not link.is_stopped():
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
            link.attach(transport)
            try:
                code, reason = await self._session(transport)
            finally:
                link.detach()
                self._targets.failed()
            if link.is_stopped():
                return
            if self._kicked is not None or code == KICKED_OUT_CLOSE:
                self._feeds.emit(KickedOutEvent(self._kicked or link.channel_id))
                self._feeds.emit(Disconnected(code, reason, will_reconnect=False))
                link.stop(KickedOut(f"kicked out: {reason}"))
                return
            self._feeds.emit(Disconnected(code, reason, will_reconnect=True))
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self, transport: Transport) -> tuple[int, str]:
        """Log in on ``transport`` and serve it until it ends; returns the close."""
        self._parts.session_starting()
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(self._read_loop(transport))
            if not await self._login(transport):
                transport.abort()
                return await reader
            helpers = [
                tg.create_task(self._parts.serve(transport)),
                tg.create_task(self._ping_loop(transport)),
            ]
            try:
                return await reader
            finally:
                for helper in helpers:
                    helper.cancel()

    async def _login(self, transport: Transport) -> bool:
        """Send ``login.signin``; True when logged in. A refused login stops the client."""
        req = await self._credentials.login_request()
        try:
            packet = await self._link.request(
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
                self._feeds.emit(Disconnected(UNAUTHORIZED_CLOSE, str(error), will_reconnect=False))
                self._link.stop(error)
            return False
        resp = packet.parse_body(pb.LoginResp)
        self._logins += 1
        self._link.logged_in(resp.account, resp.channelId)
        self._parts.logged_in()
        if self._logins > 1:
            self._feeds.emit(Reconnected(resp.account, resp.channelId, self._backoff.attempts))
        self._backoff.reset()
        return True

    # -- reading and pinging -------------------------------------------------------------

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
                self._link.resolve(packet)
            elif packet.flag == Flag.PUSH:
                try:
                    self._on_push(packet)
                except ProtocolError as exc:
                    log.warning("ignoring a malformed %s push: %s", packet.command, exc)

    def _on_push(self, packet: LogicPacket) -> None:
        if packet.command == Command.LOGIN_SIGNIN:
            self._kicked = packet.parse_body(pb.KickoutNotify).channelId
        else:
            self._parts.on_push(packet)

    async def _ping_loop(self, transport: Transport) -> None:
        ping = BasicPacket.ping().encode()
        while True:
            await asyncio.sleep(self._options.ping_interval)
            transport.send(ping)
