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

Between requests uvicorn's keep-alive timeout applies as before. Header bytes (request
line, names and values) are counted as the parser hands them over; beyond
``max_header_bytes`` the request is answered ``431`` and the connection closed.
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


class HeadersTooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized header block."""


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
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    _read_timer: TimerHandle | None = None
    _reading_body = False
    _header_bytes = 0
    _headers_too_large = False

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Before the first byte too: a connection that sends nothing is closed as well.
        self._arm(self.header_timeout, body=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._read_timer is None:  # the first request's timer runs since connect
            self._arm(self.header_timeout, body=False)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._disarm()
        if self.parser.should_upgrade() and self._should_upgrade():
            return  # the WebSocket protocol takes the connection over
        self._arm(self.body_timeout, body=True)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error 400; ours, raised from on_url/on_header,
        # deserves its own status.
        if self._headers_too_large:
            self.transport.write(_TOO_LARGE)
            self.transport.close()
            return
        super().send_400_response(msg)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._headers_too_large = True
            raise HeadersTooLarge  # httptools turns it into HttpParserCallbackError

    def _arm(self, seconds: float, *, body: bool) -> None:
        self._disarm()
        self._reading_body = body
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._reading_body:
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
