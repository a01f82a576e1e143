"""WebSocket transport on picows: one packet per binary message (docs/protocol.md, "Framing").

picows parses the HTTP upgrade straight off the TCP stream (no HTTP framework in
between) and hands us frames. Any path upgrades. Text messages are a protocol error
(close 1003); a message larger than the maximum packet size closes with 1009.
Fragmented messages are reassembled up to that maximum.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_connect,
    ws_create_server,
)

from data_plane.transport.backlog import listen_backlog
from data_plane.transport.connection import (
    CONNECTION_SLOTS,
    DEFAULT_MAX_INBOX,
    DEFAULT_MAX_SEND_BUFFER,
    CloseCode,
    PacketConnection,
    abort_unflushed,
)
from data_plane.wire import DEFAULT_MAX_PACKET_SIZE

_SHORT = struct.Struct(">BB")
_MEDIUM = struct.Struct(">BBH")
_LONG = struct.Struct(">BBQ")
_FIN_BINARY = 0x82  # FIN | opcode 2 (binary)


def encode_server_frames(payloads: list[bytes]) -> bytes:
    """Unmasked (server-to-client) final binary frames for ``payloads``, joined (RFC 6455
    §5.2: 7-bit length, or 126 + u16, or 127 + u64)."""
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        size = len(payload)
        if size < 126:
            append(_SHORT.pack(_FIN_BINARY, size))
        elif size < 0x10000:
            append(_MEDIUM.pack(_FIN_BINARY, 126, size))
        else:
            append(_LONG.pack(_FIN_BINARY, 127, size))
        append(payload)
    return b"".join(parts)


class WsConnection(PacketConnection, WSListener):
    """A :class:`PacketConnection` over a WebSocket (server or client side)."""

    __slots__ = (
        *CONNECTION_SLOTS,
        "_fragments",
        "_fragments_size",
        "_max_packet_size",
        "_on_connected",
        "_ws",
    )
    kind = "ws"

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        max_inbox: int = DEFAULT_MAX_INBOX,
        on_connected: Callable[[WsConnection], None] | None = None,
        clock: Callable[[], float] | None = None,
        pause_reading_while_blocked: bool = False,
    ) -> None:
        PacketConnection.__init__(
            self,
            max_send_buffer=max_send_buffer,
            max_inbox=max_inbox,
            clock=clock,
            pause_reading_while_blocked=pause_reading_while_blocked,
        )
        self._ws: WSTransport | None = None
        self._max_packet_size = max_packet_size
        self._fragments: list[bytes] | None = None
        """The frames of a fragmented message so far (None outside one)."""
        self._fragments_size = 0
        self._on_connected = on_connected

    @property
    def ws_transport(self) -> WSTransport | None:
        """The picows transport (for sending frames other than packets, e.g. in tests)."""
        return self._ws

    # -- WSListener --------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        if not transport.is_client_side:
            _drop_upgrade_headers(transport)
        peer = transport.underlying_transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_address = f"{peer[0]}:{peer[1]}"
        if self._on_connected is not None:
            self._on_connected(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.is_closed:
            return
        self._touch()
        msg_type = frame.msg_type
        if msg_type == WSMsgType.BINARY:
            if self._fragments:
                self.close(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
                return
            self._binary_frame(frame)
        elif msg_type == WSMsgType.CONTINUATION:
            if not self._fragments:
                self.close(CloseCode.PROTOCOL_ERROR, "continuation frame without a message")
                return
            self._binary_frame(frame)
        elif msg_type == WSMsgType.PING:
            payload = frame.get_payload_as_bytes()
            if self._write_control(len(payload) + 2):  # else closed: it does not read
                transport.send_pong(payload)
        elif msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code()
            reason = frame.get_close_message() or b""
            self._peer_closed(int(code.value), bytes(reason).decode("utf-8", "replace"))
            transport.send_close(code)
            transport.disconnect()
        elif msg_type == WSMsgType.TEXT:
            self.close(CloseCode.UNSUPPORTED_DATA, "text frames are not supported")
        # PONG: activity only, already noted.

    def _binary_frame(self, frame: WSFrame) -> None:
        size = self._fragments_size + frame.payload_size
        if size > self._max_packet_size:
            self.close(CloseCode.TOO_BIG, f"message of {size}+ bytes exceeds the maximum")
            return
        if frame.fin and not self._fragments:
            self._packet_received(frame.get_payload_as_bytes())
            self._dispatch()
            return
        fragments = self._fragments
        if fragments is None:
            fragments = self._fragments = []
        fragments.append(frame.get_payload_as_bytes())
        self._fragments_size = size
        if frame.fin:
            packet = b"".join(fragments)
            self._fragments = None
            self._fragments_size = 0
            self._packet_received(packet)
            self._dispatch()

    def pause_writing(self) -> None:
        """The socket's buffer passed its high-water mark (see the TCP transport)."""
        self._writing_blocked(True)

    def resume_writing(self) -> None:
        """The buffer drained below its low-water mark."""
        self._writing_blocked(False)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._peer_closed(CloseCode.ABNORMAL, "connection lost")
        transport.disconnect(graceful=False)

    # -- PacketConnection --------------------------------------------------------------

    def _write_packets(self, packets: list[bytes]) -> None:
        ws = self._ws
        if ws is None or ws.is_disconnected or ws.is_close_frame_sent:
            return
        if len(packets) == 1 or ws.is_client_side:
            # picows writes each frame with its own send(); a client must also mask
            # every frame with a fresh key, which is picows' job.
            for packet in packets:
                ws.send(WSMsgType.BINARY, packet)
            return
        # Several packets queued in one loop iteration: one write (one system call) for
        # all their frames. Server frames are unmasked, so they are just header + payload;
        # picows writes whole frames only, so nothing of its own can interleave.
        ws.underlying_transport.write(encode_server_frames(packets))

    def _write_buffer_size(self) -> int:
        ws = self._ws
        if ws is None:
            return 0
        size: int = ws.underlying_transport.get_write_buffer_size()
        return size

    def _set_max_packet_size(self, size: int) -> None:
        # picows' own frame limit was fixed at accept (the full size): this one closes
        # with 1009 first.
        self._max_packet_size = size

    def _pause_reading(self) -> None:
        if self._ws is not None:
            self._ws.underlying_transport.pause_reading()

    def _resume_reading(self) -> None:
        ws = self._ws
        if ws is not None and not ws.is_disconnected:
            ws.underlying_transport.resume_reading()

    def _send_close_and_disconnect(self, code: int, reason: str) -> None:
        ws = self._ws
        if ws is None:
            return
        if ws.is_disconnected:
            return
        ws.send_close(WSCloseCode(code), reason.encode("utf-8", "replace")[:123])
        ws.disconnect(graceful=True)
        abort_unflushed(self._loop, ws.underlying_transport)


def _drop_upgrade_headers(transport: WSTransport) -> None:
    """Let go of the HTTP upgrade's headers, both ways: picows keeps its request and
    response for the connection's whole life (~1 KiB of header dicts and strings per
    connection) and nothing reads them once the connection is up. They read as empty
    from then on."""
    for message in (transport.request, transport.response):
        if message is not None:
            message.headers.clear()


_SERVER_LOG = logging.LoggerAdapter(logging.getLogger("picows.server"))
"""picows' logger for every server connection. Given a :class:`logging.Logger`, picows
makes a child logger per connection (named after its file descriptor, ~600 bytes each,
kept for the connection's life); given an adapter it uses that one for all."""

SERVER_READ_BUFFER = 2048
"""Initial read buffer of a server-side connection (picows' minimum); see serve_ws."""


async def serve_ws(
    host: str,
    port: int,
    on_connection: Callable[[PacketConnection], None],
    *,
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    handshake_timeout: float = 5.0,
    clock: Callable[[], float] | None = None,
    max_frame_size: int | None = None,
    max_inbox: int = DEFAULT_MAX_INBOX,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen for WebSocket clients on any path; ``on_connection`` runs per client.

    ``clock`` stamps each connection's ``last_activity`` (default: the loop's time).
    ``max_frame_size`` is picows' own limit, fixed for the connection's life (default:
    ``max_packet_size`` + 1 KiB); pass the largest packet size the connection may be
    raised to with :meth:`~PacketConnection.set_limits`. A peer that does not read
    what we send is not read either until it catches up.
    ``reuse_port`` (SO_REUSEPORT) lets several processes listen on one port, the kernel
    spreading new connections over them (``cirno up --workers``).
    """

    def factory(request: WSUpgradeRequest) -> WsConnection:
        return WsConnection(
            max_packet_size=max_packet_size,
            max_send_buffer=max_send_buffer,
            max_inbox=max_inbox,
            on_connected=on_connection,
            clock=clock,
            pause_reading_while_blocked=True,
        )

    server: asyncio.Server = await ws_create_server(
        factory,
        host,
        port,
        websocket_handshake_timeout=handshake_timeout,
        # The frame limit is a safety net; the packet limit above closes with 1009 first.
        max_frame_size=max_frame_size or max_packet_size + 1024,
        enable_auto_pong=False,
        reuse_address=True,
        reuse_port=reuse_port or None,
        backlog=listen_backlog(),
        # picows' default 16 KiB read buffer per connection was most of an idle client's
        # memory; kim packets are small, and the buffer doubles when one does not fit.
        read_buffer_init_size=SERVER_READ_BUFFER,
        # uvloop's own transport instead of aiofastnet's: ~5 KiB less per connection
        # and the same CPU per message (measured on the relay, docs/benchmarks.md).
        use_aiofastnet=False,
        logger_name=_SERVER_LOG,
    )
    return server


async def connect_ws(
    url: str,
    *,
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    handshake_timeout: float = 5.0,
) -> WsConnection:
    """Open a WebSocket connection to ``url`` (``ws://host:port/path``)."""
    _, listener = await ws_connect(
        lambda: WsConnection(max_packet_size=max_packet_size, max_send_buffer=max_send_buffer),
        url,
        websocket_handshake_timeout=handshake_timeout,
        max_frame_size=max_packet_size + 1024,
        enable_auto_pong=False,
    )
    assert isinstance(listener, WsConnection)
    return listener
