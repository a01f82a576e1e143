"""The SDK's two transports behind one small interface: WebSocket (picows) and TCP.

Theory of operation
-------------------
A :class:`Transport` carries whole packets (bytes) both ways. The event loop calls the
protocol objects back with data; they put each complete packet into an unbounded
``asyncio.Queue`` that the client's one reader task drains with :meth:`Transport.receive`.
When the connection ends -- a close frame, EOF, or :meth:`Transport.abort` -- the queue
gets one :class:`TransportClosed` after the packets that came before it, so nothing that
arrived is lost and the reader learns the close code exactly once.

- ``ws://host:port/path``: one packet per binary WebSocket message (picows client).
- ``tcp://host:port``: frames ``u8 opcode | u32 length | payload`` parsed by the wire
  codec's :class:`~data_plane.wire.FrameDecoder`; close frames carry ``u16 code | reason``.

Sending never blocks: a client's traffic is small, and a dead peer is noticed by the
reader (close, EOF or the idle timeout), not by the writer.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol, cast
from urllib.parse import urlsplit

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from cirno_sdk.errors import ConnectFailed
from data_plane.wire import (
    DEFAULT_MAX_PACKET_SIZE,
    FrameDecoder,
    Opcode,
    ProtocolError,
    encode_frame,
)

ABNORMAL_CLOSURE = 1006
NO_STATUS = 1005
_MAX_REASON = 123


class TransportClosed(Exception):
    """The connection ended; ``code``/``reason`` come from the peer's close frame, or are
    1006 "connection lost" when it simply went away."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class Transport(Protocol):
    """A connection carrying whole packets. One reader, any number of writers."""

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (packets may still wait in the inbox)."""
        ...

    def send(self, packet: bytes) -> None:
        """Queue one packet for sending; silently dropped once the connection is closed."""
        ...

    async def receive(self) -> bytes:
        """The next packet; raises :class:`TransportClosed` once the connection has ended
        and every packet received before the end has been returned."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close gracefully with a close frame. Idempotent."""
        ...

    def abort(self) -> None:
        """Drop the connection at once, without a close frame (as a network cut would)."""
        ...


class _Inbox:
    """Packets in arrival order, then exactly one close."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | TransportClosed] = asyncio.Queue()
        self.closed: TransportClosed | None = None

    def put(self, packet: bytes) -> None:
        if self.closed is None:
            self._queue.put_nowait(packet)

    def end(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = TransportClosed(code, reason)
            self._queue.put_nowait(self.closed)

    async def get(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, TransportClosed):
            self._queue.put_nowait(item)  # every later receive() raises too
            raise item
        return item


class _WsListener(WSListener):
    """picows callbacks feeding an :class:`_Inbox`."""

    def __init__(self, max_packet_size: int) -> None:
        super().__init__()
        self.inbox = _Inbox()
        self.ws: WSTransport | None = None
        self._max = max_packet_size
        self._fragments: list[bytes] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.ws = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind in (WSMsgType.BINARY, WSMsgType.CONTINUATION):
            self._fragments.append(frame.get_payload_as_bytes())
            if sum(len(part) for part in self._fragments) > self._max:
                self._fragments.clear()
                transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"packet too large")
                transport.disconnect()
                self.inbox.end(1009, "packet too large")
            elif frame.fin:
                self.inbox.put(b"".join(self._fragments))
                self._fragments.clear()
        elif kind == WSMsgType.CLOSE:
            code = frame.get_close_code()
            reason = bytes(frame.get_close_message() or b"").decode("utf-8", "replace")
            self.inbox.end(int(code.value) if code is not None else NO_STATUS, reason)
            transport.send_close(code)
            transport.disconnect()
        # PING is answered by picows (auto pong); PONG and TEXT carry nothing for us.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.inbox.end(ABNORMAL_CLOSURE, "connection lost")


class WsTransport:
    """A :class:`Transport` over a picows WebSocket client connection."""

    def __init__(self, listener: _WsListener, ws: WSTransport) -> None:
        self._listener = listener
        self._ws = ws

    @property
    def closed(self) -> bool:
        """See :attr:`Transport.closed`."""
        return self._listener.inbox.closed is not None

    def send(self, packet: bytes) -> None:
        """Send one packet as one binary message."""
        if self._listener.inbox.closed is None and not self._ws.is_disconnected:
            self._ws.send(WSMsgType.BINARY, packet)

    async def receive(self) -> bytes:
        """The next packet (see :meth:`Transport.receive`)."""
        return await self._listener.inbox.get()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and disconnect."""
        if self._listener.inbox.closed is None and not self._ws.is_disconnected:
            self._ws.send_close(WSCloseCode(code), reason.encode()[:_MAX_REASON])
            self._ws.disconnect()
        self._listener.inbox.end(code, reason or "closed by the client")

    def abort(self) -> None:
        """Drop the TCP connection under the WebSocket without a close frame."""
        self._ws.underlying_transport.abort()
        self._listener.inbox.end(ABNORMAL_CLOSURE, "aborted by the client")


class _TcpProtocol(asyncio.Protocol):
    """asyncio callbacks parsing TCP frames into an :class:`_Inbox`."""

    def __init__(self, max_packet_size: int) -> None:
        self.inbox = _Inbox()
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(max_payload=max_packet_size)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            self.inbox.end(1002, str(exc))
            if self.transport is not None:
                self.transport.abort()
            return
        for frame in frames:
            if frame.opcode == Opcode.BINARY:
                self.inbox.put(frame.payload)
            elif frame.opcode == Opcode.PING and self.transport is not None:
                self.transport.write(encode_frame(Opcode.PONG, frame.payload))
            elif frame.opcode == Opcode.CLOSE:
                code, reason = _decode_close(frame.payload)
                self.inbox.end(code, reason)
                if self.transport is not None:
                    self.transport.close()
                return

    def eof_received(self) -> bool:
        self.inbox.end(ABNORMAL_CLOSURE, "connection closed without a close frame")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.inbox.end(ABNORMAL_CLOSURE, f"connection lost: {exc}" if exc else "connection lost")


def _decode_close(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return NO_STATUS, ""
    return int.from_bytes(payload[:2], "big"), payload[2:].decode("utf-8", "replace")


class TcpTransport:
    """A :class:`Transport` over a TCP stream of frames."""

    def __init__(self, protocol: _TcpProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport

    @property
    def closed(self) -> bool:
        """See :attr:`Transport.closed`."""
        return self._protocol.inbox.closed is not None

    def send(self, packet: bytes) -> None:
        """Send one packet as one binary frame."""
        if self._protocol.inbox.closed is None and not self._transport.is_closing():
            self._transport.write(encode_frame(Opcode.BINARY, packet))

    async def receive(self) -> bytes:
        """The next packet (see :meth:`Transport.receive`)."""
        return await self._protocol.inbox.get()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame, then close the socket once it is written."""
        if self._protocol.inbox.closed is None and not self._transport.is_closing():
            payload = code.to_bytes(2, "big") + reason.encode()[:_MAX_REASON]
            self._transport.write(encode_frame(Opcode.CLOSE, payload))
            self._transport.close()
        self._protocol.inbox.end(code, reason or "closed by the client")

    def abort(self) -> None:
        """Drop the connection at once (no close frame, RST)."""
        self._transport.abort()
        self._protocol.inbox.end(ABNORMAL_CLOSURE, "aborted by the client")


async def open_transport(
    url: str, *, timeout: float = 10.0, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
) -> Transport:
    """Connect to ``ws://host:port/path`` or ``tcp://host:port``.

    Raises :class:`~cirno_sdk.errors.ConnectFailed` when the address cannot be reached
    within ``timeout`` seconds, ``ValueError`` for another scheme.
    """
    parts = urlsplit(url)
    try:
        async with asyncio.timeout(timeout):
            if parts.scheme in ("ws", "wss"):
                ws, listener = await ws_connect(
                    lambda: _WsListener(max_packet_size),
                    url,
                    websocket_handshake_timeout=timeout,
                    max_frame_size=max_packet_size + 1024,
                    enable_auto_pong=True,
                )
                assert isinstance(listener, _WsListener)
                return WsTransport(listener, ws)
            if parts.scheme == "tcp":
                if parts.hostname is None or parts.port is None:
                    raise ValueError(f"a tcp URL needs a host and a port: {url!r}")
                loop = asyncio.get_running_loop()
                raw, protocol = await loop.create_connection(
                    lambda: _TcpProtocol(max_packet_size), parts.hostname, parts.port
                )
                return TcpTransport(protocol, raw)
    except (OSError, TimeoutError) as exc:
        raise ConnectFailed(f"cannot connect to {url}: {exc or 'timed out'}") from exc
    except Exception as exc:
        # picows raises its own handshake errors (WSError, ...): report them as one kind.
        if isinstance(exc, ValueError):
            raise
        raise ConnectFailed(f"cannot connect to {url}: {exc}") from exc
    raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use ws://, wss:// or tcp://")
