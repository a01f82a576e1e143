"""The connection as every part of the client sees it: one slot, one state, and the
matching of responses to requests.

The session runner (:mod:`cirno_sdk.session`) is the only writer: it attaches each new
transport, marks the login, and detaches the transport when the connection ends. The
delivery part, the retrying calls and the public API only read the state, wait for it
to change and send requests through :meth:`Link.request`.

Guarantees
----------
- At most one transport is current, and :meth:`Link.request` refuses any other, so a
  request is never sent on a connection that has already been replaced.
- Every request gets a fresh sequence (1 .. 2**32-1, wrapping) and is answered by the
  response carrying it, once. When the connection ends (:meth:`Link.detach`) or the
  client stops (:meth:`Link.stop`), every request still waiting fails at once with
  :class:`~cirno_sdk.errors.ConnectionLost` or the stop error: none hangs.
- Stopping is final: the stop error stays, the ``on_stop`` collaborator runs once, and
  every later wait raises the stop error.
- Every state change wakes all waiters (:meth:`Link.pulse`); they recheck their
  condition after waking, so no change is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from google.protobuf.message import Message as ProtoMessage

from cirno_sdk.errors import (
    CirnoError,
    ClientClosed,
    ConnectionLost,
    DeadlineExceeded,
    RequestTimeout,
)
from cirno_sdk.transport import Transport
from data_plane.wire import LogicPacket

Clock = Callable[[], float]
NOT_CONNECTED = "not connected: use `async with Client(...)` or connect()"


class Link:
    """The shared connection state of one client."""

    def __init__(self, *, on_stop: Callable[[], None], clock: Clock = time.monotonic) -> None:
        self._on_stop = on_stop
        self._clock = clock
        self.account = ""
        self.channel_id = ""
        self._started = False
        self._transport: Transport | None = None
        self._online = False
        self._stop_error: CirnoError | None = None
        self._changed = asyncio.Event()
        self._sequence = 0
        self._waiters: dict[int, asyncio.Future[LogicPacket]] = {}

    # -- state ---------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the client was connected once (``connect()`` was called)."""
        return self._started

    @property
    def transport(self) -> Transport | None:
        """The current connection, logged in or not, or None between connections."""
        return self._transport

    @property
    def online(self) -> bool:
        """Whether the current connection is logged in."""
        return self._online

    def is_stopped(self) -> bool:
        """Whether the client stopped for good (a method: the answer changes under await)."""
        return self._stop_error is not None

    def start(self) -> None:
        """Mark the client as connecting (requests may now wait for the connection)."""
        self._started = True

    def attach(self, transport: Transport) -> None:
        """A new connection is open (not logged in yet)."""
        self._transport = transport

    def logged_in(self, account: str, channel_id: str) -> None:
        """The current connection is logged in as ``account`` on ``channel_id``."""
        self.account = account
        self.channel_id = channel_id
        self._online = True
        self.pulse()

    def detach(self) -> None:
        """The current connection ended: fail what waits on it, wake the waiters."""
        self._online = False
        self._transport = None
        self.fail_waiters(ConnectionLost("the connection ended"))
        self.pulse()

    def stop(self, error: CirnoError) -> None:
        """Enter the final state: no reconnect, iterators end, waiters fail."""
        if self._stop_error is not None:
            return
        self._stop_error = error
        self._online = False
        self._on_stop()
        self.fail_waiters(error)
        self.pulse()

    def pulse(self) -> None:
        """Wake everything waiting for a state change."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- waiting -------------------------------------------------------------------------

    async def wait_online(self, deadline: float) -> Transport:
        """The live transport once logged in; raises the stop error or DeadlineExceeded."""
        while True:
            if self._stop_error is not None:
                raise self._stop_error
            if not self._started:
                raise ClientClosed(NOT_CONNECTED)
            transport = self._transport
            if self._online and transport is not None and not transport.closed:
                return transport
            await self._wait_change(deadline, "not connected before the deadline")

    async def wait_until(self, done: Callable[[], bool], deadline: float, late: str) -> None:
        """Return once ``done()`` holds; raises the stop error, or DeadlineExceeded(late)."""
        while not done():
            if self._stop_error is not None:
                raise self._stop_error
            await self._wait_change(deadline, late)

    async def _wait_change(self, deadline: float, late: str) -> None:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise DeadlineExceeded(late)
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await changed.wait()

    # -- requests ------------------------------------------------------------------------

    async def request(
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

    def resolve(self, response: LogicPacket) -> None:
        """Hand ``response`` to the request waiting for its sequence, if any still does."""
        waiter = self._waiters.pop(response.sequence, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def fail_waiters(self, error: CirnoError) -> None:
        """Fail every request still waiting for a response with ``error``."""
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(error)
