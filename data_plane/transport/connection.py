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
the kernel-side write buffer is bounded by ``max_send_buffer``: when a peer reads too
slowly, ``send`` returns False and the caller disconnects it as a slow consumer, so one
slow client never holds memory or time that belongs to the others.

Reading is paused while the inbox holds more than ``max_inbox`` packets, which pushes
back on a peer that sends faster than we handle.

An owner that handles packets synchronously can skip the inbox and the task wake-up:
after :meth:`PacketConnection.set_receiver` the transport hands every packet to the
callback as soon as it is decoded (TCP: all the packets of one read at once), in order,
and :meth:`~PacketConnection.wait_closed` takes the place of the receive loop. The
callback does the handling the receive loop did, so nothing queues up and reading never
needs pausing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from data_plane.transport.errors import ConnectionClosed

log = logging.getLogger(__name__)

Receiver = Callable[[list[bytes]], object]
"""Takes the packets just received, in order; what it returns is ignored (see
:meth:`PacketConnection.set_receiver`)."""


class CloseCode(enum.IntEnum):
    """Close codes, shared by WebSocket close frames and TCP close frames.

    1000–1013 are RFC 6455 codes; 4000–4999 are cirno-im's (see docs/protocol.md).
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006
    POLICY_VIOLATION = 1008
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    UNAUTHORIZED = 4001
    KICKED_OUT = 4002
    SLOW_CONSUMER = 4003
    LOGIN_TIMEOUT = 4004
    IDLE_TIMEOUT = 4005
    QUOTA_EXCEEDED = 4006
    RESYNC = 4007


@dataclass(frozen=True, slots=True)
class CloseReason:
    """Why a connection ended; ``by_peer`` tells who ended it."""

    code: int
    reason: str
    by_peer: bool


DEFAULT_MAX_SEND_BUFFER = 4 * 1024 * 1024
DEFAULT_MAX_INBOX = 1024


class PacketConnection(ABC):
    """A connection that carries whole packets (bytes) in both directions.

    Guarantees: packets are received in the order the peer sent them; packets passed
    to :meth:`send` leave in that order; after :meth:`close` (or the peer's close)
    :meth:`receive` raises :class:`ConnectionClosed` once the inbox is drained, and
    :meth:`send` returns False.
    """

    kind: str = "?"

    def __init__(
        self,
        *,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        max_inbox: int = DEFAULT_MAX_INBOX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        # The owner's clock (the gateway's idle watchdog compares against it), so a test
        # that advances a fake clock also controls when the peer was last heard from.
        self._now = clock or self._loop.time
        self._inbox: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        self._max_send_buffer = max_send_buffer
        self._max_inbox = max_inbox
        self._reading_paused = False
        self._closed: CloseReason | None = None
        self._closed_event = asyncio.Event()
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
        while not self._inbox:
            if self._closed is not None:
                raise ConnectionClosed(self._closed.code, self._closed.reason)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = list(self._inbox)
        self._inbox.clear()
        if self._reading_paused:
            self._reading_paused = False
            self._resume_reading()
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
        if self._reading_paused:
            self._reading_paused = False
            self._resume_reading()
        if self._inbox:
            self._dispatch()

    def send(self, packet: bytes) -> bool:
        """Queue ``packet`` for sending; False when closed or the peer is too slow."""
        if self._closed is not None:
            return False
        if self._outbox_bytes + self._write_buffer_size() + len(packet) > self._max_send_buffer:
            return False
        self._outbox.append(packet)
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
        self._flush()
        self._set_closed(CloseReason(int(code), reason, by_peer=False))
        self._send_close_and_disconnect(int(code), reason)

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        await self._closed_event.wait()

    # -- used by the transports --------------------------------------------------------

    def _packet_received(self, packet: bytes) -> None:
        """Queue one packet; with a receiver set, the transport calls :meth:`_dispatch`
        once it has queued everything from the current read."""
        self._inbox.append(packet)
        if self._receiver is not None:
            return
        if len(self._inbox) >= self._max_inbox and not self._reading_paused:
            self._reading_paused = True
            self._pause_reading()
        self._wake()

    def _dispatch(self) -> None:
        """Hand the queued packets to the receiver (no-op without one)."""
        receiver = self._receiver
        if receiver is None or not self._inbox or self._closed is not None:
            return
        batch = list(self._inbox)
        self._inbox.clear()
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
        self._outbox.clear()
        self._outbox_bytes = 0
        self._closed_event.set()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._outbox:
            return
        batch = self._outbox
        self._outbox = []
        self._outbox_bytes = 0
        self._write_packets(batch)

    @abstractmethod
    def _write_packets(self, packets: list[bytes]) -> None:
        """Write ``packets`` to the transport, as few writes as the framing allows."""

    @abstractmethod
    def _write_buffer_size(self) -> int:
        """Bytes accepted by the transport but not yet sent to the peer."""

    @abstractmethod
    def _pause_reading(self) -> None: ...

    @abstractmethod
    def _resume_reading(self) -> None: ...

    @abstractmethod
    def _send_close_and_disconnect(self, code: int, reason: str) -> None:
        """Send the framing's close message and close the transport gracefully."""


def encode_close_payload(code: int, reason: str) -> bytes:
    """``u16 code | utf-8 reason`` (at most 123 bytes of reason, as in RFC 6455)."""
    return code.to_bytes(2, "big") + reason.encode("utf-8", "replace")[:123]


def decode_close_payload(payload: bytes) -> tuple[int, str]:
    """Inverse of :func:`encode_close_payload`; an empty payload is 1005 (no status)."""
    if len(payload) < 2:
        return 1005, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")
