"""One connection abstraction for WebSocket and TCP peers.

Theory of operation
-------------------
The transports are asyncio protocols: the event loop calls them back with bytes, they
decode whole packets with the sans-I/O codec and park them in a small inbox. The one
receive loop of each connection (owned by the gateway or the logic node) takes the
whole inbox at once with :meth:`PacketConnection.receive`, so a burst of pipelined
packets costs one wake-up, not one per packet.

Sending never blocks. :meth:`PacketConnection.send` appends to an outbox and schedules
one flush for the end of the current loop iteration, so every packet queued in the same
iteration leaves in one write (TCP: one ``write`` of joined frames). The outbox plus
the transport's write buffer is bounded by ``max_send_buffer``: when a peer reads too
slowly, ``send`` returns False and the caller disconnects it as a slow consumer, so one
slow client never holds memory or time that belongs to the others.

**Every** write counts against that bound, not only packets: the answers the transport
writes by itself (pongs) go through :meth:`PacketConnection._write_control`, which
closes the connection with SLOW_CONSUMER (4003) instead of writing past the bound. A
close never waits forever for a peer that does not read: whatever it cannot flush
within ``CLOSE_LINGER`` seconds (the close frame with its reason included) is dropped
with the connection.

Reading is paused while any of these holds (each a separate reason, so one ending does
not resume reading while another still holds):

- the inbox holds ``max_inbox`` packets (a peer that sends faster than we handle);
- with ``pause_reading_while_blocked`` (server side), the transport asked us to pause
  writing (``pause_writing``): a peer that does not read our answers is not read
  either, so it cannot make us produce more of them;
- the owner asked (:meth:`PacketConnection.hold_reading`), e.g. the gateway while a
  client has its maximum of requests in flight.

The limits can be raised once the peer has authenticated
(:meth:`PacketConnection.set_limits`): before a login (gateway) or a handshake (logic
node) a connection gets a tiny packet size, send buffer and inbox.

An owner that handles packets synchronously can skip the inbox and the task wake-up:
after :meth:`PacketConnection.set_receiver` the transport hands every packet to the
callback as soon as it is decoded (TCP: all the packets of one read at once), in order,
and :meth:`~PacketConnection.wait_closed` takes the place of the receive loop. The
callback does the handling the receive loop did, so nothing queues up and reading never
needs pausing. With :meth:`~PacketConnection.call_when_closed` as well, the owner needs
no task at all while the connection lives (the gateway's idle clients).

Memory: a server holds tens of thousands of mostly idle connections, so a connection
keeps no more than it uses. Its attributes are slots (:data:`CONNECTION_SLOTS`, which
each concrete transport lists in its own ``__slots__``), the inbox is a plain list
taken whole, and the event :meth:`~PacketConnection.wait_closed` waits on exists only
once somebody waits.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from data_plane.transport.close import CloseCode as CloseCode
from data_plane.transport.close import CloseReason as CloseReason
from data_plane.transport.errors import ConnectionClosed

log = logging.getLogger(__name__)

Receiver = Callable[[list[bytes]], object]
"""Takes the packets just received, in order; what it returns is ignored (see
:meth:`PacketConnection.set_receiver`)."""


DEFAULT_MAX_SEND_BUFFER = 4 * 1024 * 1024
DEFAULT_MAX_INBOX = 1024
CLOSE_LINGER = 2.0
"""Seconds a closed connection may take to flush what it still holds to the peer."""

CONNECTION_SLOTS = (
    "_closed",
    "_closed_event",
    "_flush_handle",
    "_holds",
    "_inbox",
    "_loop",
    "_max_inbox",
    "_max_send_buffer",
    "_now",
    "_on_closed",
    "_outbox",
    "_outbox_bytes",
    "_pause_while_blocked",
    "_receiver",
    "_waiter",
    "_write_blocked",
    "last_activity",
    "remote_address",
)
"""The attributes :class:`PacketConnection` sets. It declares no slots itself (a
transport also derives from a C base, e.g. picows' listener, and two bases with slots
cannot be combined), so each concrete transport puts these in its ``__slots__``."""

_HOLD_INBOX = 1
_HOLD_BLOCKED = 2
_HOLD_OWNER = 4


class PacketConnection(ABC):
    """A connection that carries whole packets (bytes) in both directions.

    Guarantees: packets are received in the order the peer sent them; packets passed
    to :meth:`send` leave in that order; after :meth:`close` (or the peer's close)
    :meth:`receive` raises :class:`ConnectionClosed` once the inbox is drained, and
    :meth:`send` returns False.
    """

    if not TYPE_CHECKING:  # mypy would take the empty slots as the whole list
        __slots__ = ()  # see CONNECTION_SLOTS
    kind: str = "?"

    def __init__(
        self,
        *,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        max_inbox: int = DEFAULT_MAX_INBOX,
        clock: Callable[[], float] | None = None,
        pause_reading_while_blocked: bool = False,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        # The owner's clock (the gateway's idle watchdog compares against it), so a test
        # that advances a fake clock also controls when the peer was last heard from.
        self._now = clock or self._loop.time
        self._inbox: list[bytes] | None = None
        """Packets received and not taken yet (None when there are none)."""
        self._waiter: asyncio.Future[None] | None = None
        self._outbox: list[bytes] | None = None
        """Packets to flush at the end of this loop iteration (None when there are none)."""
        self._outbox_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        self._max_send_buffer = max_send_buffer
        self._max_inbox = max_inbox
        self._holds = 0
        """Why reading is paused: a bit per reason (``_HOLD_*``); 0 while reading."""
        self._pause_while_blocked = pause_reading_while_blocked
        self._write_blocked = False
        self._closed: CloseReason | None = None
        self._closed_event: asyncio.Event | None = None
        """Created by the first :meth:`wait_closed` (most connections never need one)."""
        self._on_closed: Callable[[], object] | None = None
        self._receiver: Receiver | None = None
        self.last_activity = self._now()
        """When the last frame arrived, on the ``clock`` given (default: the loop's)."""
        self.remote_address = ""

    # -- used by the owner -------------------------------------------------------------

    @property
    def close_reason(self) -> CloseReason | None:
        """How the connection ended, or None while it is open."""
        return self._closed

    @property
    def is_closed(self) -> bool:
        """True once either side closed the connection."""
        return self._closed is not None

    async def receive(self) -> list[bytes]:
        """Wait for and return every packet received so far (at least one).

        Raises :class:`ConnectionClosed` when the connection has ended and nothing is
        left to read.
        """
        while not (batch := self._inbox):
            if self._closed is not None:
                raise ConnectionClosed(self._closed.code, self._closed.reason)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._inbox = None
        self._release(_HOLD_INBOX)
        return batch

    def set_receiver(self, receiver: Receiver) -> None:
        """Hand packets to ``receiver`` from now on instead of queueing them for
        :meth:`receive` (which must not be used afterwards).

        Packets already queued go to ``receiver`` at once. It is called from the
        transport's callbacks, in the order the peer sent the packets, and never after
        the connection closed. It must not block; an exception it raises is logged and
        closes this connection with INTERNAL_ERROR (1011), never the event loop.
        """
        self._receiver = receiver
        self._release(_HOLD_INBOX)
        if self._inbox:
            self._dispatch()

    @property
    def reading_paused(self) -> bool:
        """True while reading from the peer is paused (for any of the reasons above)."""
        return self._holds != 0

    @property
    def max_send_buffer(self) -> int:
        """The send bound in bytes (outbox plus the transport's write buffer)."""
        return self._max_send_buffer

    def set_limits(
        self, *, max_packet_size: int, max_send_buffer: int, max_inbox: int = DEFAULT_MAX_INBOX
    ) -> None:
        """Change the largest packet accepted from the peer, the send bound and the
        inbox (raised once the peer has authenticated; packets already received are
        not re-checked)."""
        self._max_send_buffer = max_send_buffer
        self._max_inbox = max_inbox
        self._set_max_packet_size(max_packet_size)
        if len(self._inbox or ()) < max_inbox:
            self._release(_HOLD_INBOX)

    def hold_reading(self, hold: bool) -> None:
        """Stop (True) or resume (False) reading for the owner's sake; the other reasons
        to pause (full inbox, a peer that does not read) hold independently."""
        if hold:
            self._hold(_HOLD_OWNER)
        else:
            self._release(_HOLD_OWNER)

    def send(self, packet: bytes) -> bool:
        """Queue ``packet`` for sending; False when closed or the peer is too slow."""
        if self._closed is not None:
            return False
        if self._outbox_bytes + self._write_buffer_size() + len(packet) > self._max_send_buffer:
            return False
        outbox = self._outbox
        if outbox is None:
            self._outbox = [packet]
        else:
            outbox.append(packet)
        self._outbox_bytes += len(packet)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        return True

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Flush what is queued, send a close frame with ``code``/``reason``, and close.

        Safe to call more than once; only the first call has an effect.
        """
        if self._closed is not None:
            return
        self._flush()  # within the send bound: the linger below drops it if unread
        self._set_closed(CloseReason(int(code), reason, by_peer=False))
        self._send_close_and_disconnect(int(code), reason)

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        if self._closed is not None:
            return
        if self._closed_event is None:
            self._closed_event = asyncio.Event()
        await self._closed_event.wait()

    def call_when_closed(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once after the connection ended (at once if it has).

        It runs as a loop callback of its own, never inside :meth:`close` or a
        transport callback, so it may drop whatever state the owner keeps for the
        connection while the code that closed it is still running. One callback per
        connection (a second call replaces the first); an exception it raises is
        logged.
        """
        self._on_closed = callback
        if self._closed is not None:
            self._loop.call_soon(self._run_on_closed)

    # -- used by the transports --------------------------------------------------------

    def _packet_received(self, packet: bytes) -> None:
        """Queue one packet; with a receiver set, the transport calls :meth:`_dispatch`
        once it has queued everything from the current read."""
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = [packet]
        else:
            inbox.append(packet)
        if self._receiver is not None:
            return
        if len(inbox) >= self._max_inbox:
            self._hold(_HOLD_INBOX)
        self._wake()

    def _hold(self, reason: int) -> None:
        if not self._holds and self._closed is None:
            self._pause_reading()
        self._holds |= reason

    def _release(self, reason: int) -> None:
        if not self._holds & reason:
            return
        self._holds &= ~reason
        if not self._holds and self._closed is None:
            self._resume_reading()

    def _writing_blocked(self, blocked: bool) -> None:
        """The transport's flow control: ``pause_writing`` (True) / ``resume_writing``."""
        self._write_blocked = blocked
        if not self._pause_while_blocked:
            return
        if blocked:
            self._hold(_HOLD_BLOCKED)
        else:
            self._release(_HOLD_BLOCKED)

    def _write_control(self, size: int) -> bool:
        """Whether a control frame of ``size`` bytes (a pong) may be written; when it
        would exceed the send bound, the peer is not reading: close it and say so."""
        if self._closed is not None:
            return False
        if self._outbox_bytes + self._write_buffer_size() + size > self._max_send_buffer:
            self.close(CloseCode.SLOW_CONSUMER, "peer does not read: send buffer full")
            return False
        return True

    def _dispatch(self) -> None:
        """Hand the queued packets to the receiver (no-op without one)."""
        receiver, batch = self._receiver, self._inbox
        if receiver is None or not batch or self._closed is not None:
            return
        self._inbox = None
        try:
            receiver(batch)
        except Exception:
            log.exception("packet handler failed for %s", self.remote_address)
            self.close(CloseCode.INTERNAL_ERROR, "internal error")

    def _touch(self) -> None:
        self.last_activity = self._now()

    def _peer_closed(self, code: int, reason: str) -> None:
        if self._closed is None:
            self._set_closed(CloseReason(code, reason, by_peer=True))

    def _set_closed(self, reason: CloseReason) -> None:
        self._closed = reason
        self._outbox = None
        self._outbox_bytes = 0
        # Never called again; its owner's state usually refers back to this connection,
        # and letting go here frees both by reference counting, not the cycle collector.
        self._receiver = None
        if self._closed_event is not None:
            self._closed_event.set()
        if self._on_closed is not None:
            self._loop.call_soon(self._run_on_closed)
        self._wake()

    def _run_on_closed(self) -> None:
        callback, self._on_closed = self._on_closed, None
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("close callback failed for %s", self.remote_address)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        self._flush_handle = None
        batch = self._outbox
        if not batch:
            return
        self._outbox = None
        self._outbox_bytes = 0
        self._write_packets(batch)

    @abstractmethod
    def _write_packets(self, packets: list[bytes]) -> None:
        """Write ``packets`` to the transport, as few writes as the framing allows."""

    @abstractmethod
    def _write_buffer_size(self) -> int:
        """Bytes accepted by the transport but not yet sent to the peer."""

    def _set_max_packet_size(self, size: int) -> None:
        """Apply a new largest packet accepted from the peer (the transports that parse
        frames override this; a connection without framing has nothing to apply)."""
        return  # a no-op by default (an empty body alone would read as a forgotten stub)

    @abstractmethod
    def _pause_reading(self) -> None: ...

    @abstractmethod
    def _resume_reading(self) -> None: ...

    @abstractmethod
    def _send_close_and_disconnect(self, code: int, reason: str) -> None:
        """Send the framing's close message and close the transport gracefully, but
        drop what is left to send after ``CLOSE_LINGER`` seconds."""


def abort_unflushed(loop: asyncio.AbstractEventLoop, transport: asyncio.Transport) -> None:
    """After a graceful close of ``transport``: abort it if it still holds bytes for
    the peer ``CLOSE_LINGER`` seconds later. asyncio waits for the write buffer to
    drain before it really closes, which for a peer that never reads is never, and the
    buffer stays in memory all that time."""
    if transport.get_write_buffer_size():
        loop.call_later(CLOSE_LINGER, _abort_if_open, transport)


def _abort_if_open(transport: asyncio.Transport) -> None:
    if transport.get_write_buffer_size():
        transport.abort()
