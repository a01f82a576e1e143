"""uvicorn's httptools protocol with read deadlines and a header size cap.

Why: uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``).
Nothing bounds a connection that never sends a byte, sends half its headers, or half
its body: each holds a socket, a protocol object and, with the connection cap, a slot
that honest clients then miss. And httptools (llhttp) has no header size limit of its
own (``h11_max_incomplete_event_size`` applies only to the h11 implementation), so a
request line or header block can grow without end in uvicorn's header list.

How: :class:`ReadDeadlineProtocol` subclasses uvicorn's ``HttpToolsProtocol`` and keeps
one timer per connection, driven by the parser's own callbacks:

- from ``connection_made`` (and, on a kept-alive connection, from the first byte of each
  next request, ``on_message_begin``) until ``on_headers_complete``: the request line
  and headers must arrive within ``header_timeout`` seconds;
- from ``on_headers_complete`` until ``on_message_complete``: the whole body must
  arrive within ``body_timeout`` seconds (a total, not an idle gap, so a client that
  drips one byte at a time is closed too);
- when the timer fires, the server writes ``408 Request Timeout`` with
  ``Connection: close`` if no answer to that request has started, and closes the
  connection. A connection closed in the middle of a body makes the app's ``receive``
  return ``http.disconnect``, as any client that goes away does.

Between requests uvicorn's keep-alive timeout applies as before. The bytes of a request
line and headers are counted as they are read (a read that ends the headers counts up
to its blank line); beyond ``max_header_bytes`` the request is answered ``431`` and the
connection closed before the parser sees the read.
Upgraded (WebSocket) connections leave this protocol and its timer behind.
"""

from __future__ import annotations

from asyncio import TimerHandle, Transport

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from control_plane.settings import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_HEADER_BYTES,
)

_Base = HttpToolsProtocol
_HEADERS, _BODY, _IDLE = "headers", "body", "idle"
"""What the connection is reading: a request line and headers, a body, or nothing."""


def _answer(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + text
    )


_TIMED_OUT = _answer(b"408 Request Timeout", b"Request Timeout")
_TOO_LARGE = _answer(b"431 Request Header Fields Too Large", b"Request Header Fields Too Large")


class ReadDeadlineProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus header/body read deadlines and a header size cap.

    The limits are class attributes: :func:`read_deadline_protocol` makes a subclass
    with the configured values (uvicorn builds protocols itself, from a class).

    Per request the protocol only notes a deadline (two ``loop.time()`` reads): its one
    timer per connection is armed at connect and, each time it fires, either closes a
    late connection or re-arms itself for the deadline now in force, so a fast request
    never schedules or cancels a timer. The per-request hooks call the base class
    directly (``_Base.…``, not ``super()``): they run on every request of the
    ``/v1/route`` fast path.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    _timer: TimerHandle | None = None
    _phase = _HEADERS
    _deadline = 0.0
    _header_bytes = 0

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Before the first byte too: a connection that sends nothing is closed as well.
        self._deadline = self.loop.time() + self.header_timeout
        self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase != _BODY and self._header_bytes + len(data) > self.max_header_bytes:
            # Rare (a large read while headers are expected): measure the header part.
            end = data.find(b"\r\n\r\n")
            if self._header_bytes + (len(data) if end < 0 else end) > self.max_header_bytes:
                self._header_bytes = 0
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        _Base.data_received(self, data)
        if self._phase == _HEADERS:
            # Still inside the headers, so the whole read was header bytes.
            self._header_bytes += len(data)

    def on_message_begin(self) -> None:
        _Base.on_message_begin(self)
        if self._phase == _IDLE:  # the first request's deadline runs since connect
            self._phase = _HEADERS
            self._deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        _Base.on_headers_complete(self)
        self._header_bytes = 0
        if self.parser.should_upgrade() and self._should_upgrade():
            self._phase = _IDLE  # the WebSocket protocol takes the connection over
            return
        self._phase = _BODY
        self._deadline = self.loop.time() + self.body_timeout

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        _Base.on_message_complete(self)

    def _check_deadline(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._phase == _IDLE or now < self._deadline:
            # Between requests uvicorn's keep-alive timeout applies; look again when a
            # request that starts now would be due.
            wake = self._deadline if self._phase != _IDLE else now + self.header_timeout
            self._timer = self.loop.call_at(wake, self._check_deadline)
            return
        cycle = self.cycle
        if self._phase == _BODY:
            answered = cycle is not None and cycle.response_started
        else:
            # A new request's headers are late; the previous request (pipelined) may
            # still be answering on this connection, and its answer must not be cut.
            answered = cycle is not None and not cycle.response_complete
        if not answered:
            self.transport.write(_TIMED_OUT)
        self.transport.close()


def read_deadline_protocol(
    header_timeout: float, body_timeout: float, max_header_bytes: int
) -> type[ReadDeadlineProtocol]:
    """A :class:`ReadDeadlineProtocol` subclass with these limits, for ``uvicorn.run(http=…)``."""
    return type(
        "ConfiguredReadDeadlineProtocol",
        (ReadDeadlineProtocol,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_header_bytes": max_header_bytes,
        },
    )
