"""TCP transport: ``u8 opcode | u32 length | payload`` frames (docs/protocol.md, "Framing").

Used by TCP clients and by the gateway ↔ logic links. Frames are parsed from whole
reads by :class:`data_plane.wire.FrameDecoder`; a framing error closes this connection
with a close frame that says why, and never reaches other connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

from data_plane.transport.backlog import listen_backlog
from data_plane.transport.close import decode_close_payload, encode_close_payload
from data_plane.transport.connection import (
    CONNECTION_SLOTS,
    DEFAULT_MAX_INBOX,
    DEFAULT_MAX_SEND_BUFFER,
    CloseCode,
    PacketConnection,
    abort_unflushed,
)
from data_plane.wire import (
    DEFAULT_MAX_PACKET_SIZE,
    FrameDecoder,
    Opcode,
    PacketTooLarge,
    ProtocolError,
    encode_frame,
    encode_frames,
)


class TcpConnection(PacketConnection, asyncio.Protocol):
    """A :class:`PacketConnection` over a TCP stream of frames."""

    __slots__ = (*CONNECTION_SLOTS, "_decoder", "_on_connected", "_transport")
    kind = "tcp"

    def __init__(
        self,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        max_inbox: int = DEFAULT_MAX_INBOX,
        on_connected: Callable[[TcpConnection], None] | None = None,
        clock: Callable[[], float] | None = None,
        pause_reading_while_blocked: bool = False,
    ) -> None:
        super().__init__(
            max_send_buffer=max_send_buffer,
            max_inbox=max_inbox,
            clock=clock,
            pause_reading_while_blocked=pause_reading_while_blocked,
        )
        self._decoder = FrameDecoder(max_payload=max_packet_size)
        self._transport: asyncio.Transport | None = None
        self._on_connected = on_connected

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_address = f"{peer[0]}:{peer[1]}"
        if self._on_connected is not None:
            self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        if self.is_closed:
            return
        self._touch()
        try:
            frames = self._decoder.feed(data)
        except PacketTooLarge as exc:
            self.close(CloseCode.TOO_BIG, str(exc))
            return
        except ProtocolError as exc:
            self.close(CloseCode.PROTOCOL_ERROR, str(exc))
            return
        for frame in frames:
            opcode = frame.opcode
            if opcode == Opcode.BINARY:
                self._packet_received(frame.payload)
            elif opcode == Opcode.PING:
                pong = encode_frame(Opcode.PONG, frame.payload)
                if not self._write_control(len(pong)):
                    return  # closed: the peer does not read its pongs
                self.write_raw(pong)
            elif opcode == Opcode.CLOSE:
                self._dispatch()  # what came before the close frame, in order
                code, reason = decode_close_payload(frame.payload)
                self._peer_closed(code, reason)
                if self._transport is not None:
                    self._transport.close()
                return
            # PONG: activity only, already noted.
        self._dispatch()

    def eof_received(self) -> bool:
        self._peer_closed(CloseCode.ABNORMAL, "peer closed the stream")
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        reason = "connection lost" if exc is None else f"connection lost: {exc}"
        self._peer_closed(CloseCode.ABNORMAL, reason)
        if self._transport is not None:
            self._transport.close()

    def pause_writing(self) -> None:
        """The transport's buffer passed its high-water mark: the peer reads slower
        than we write (server side: stop reading it until it catches up)."""
        self._writing_blocked(True)

    def resume_writing(self) -> None:
        """The buffer drained below its low-water mark."""
        self._writing_blocked(False)

    # -- PacketConnection --------------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        """Write bytes as they are, outside the framing and the send bound (tests, and
        frames whose room was checked first)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _write_packets(self, packets: list[bytes]) -> None:
        self.write_raw(encode_frames(packets))

    def _write_buffer_size(self) -> int:
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    def _set_max_packet_size(self, size: int) -> None:
        self._decoder.max_payload = size

    def _pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _send_close_and_disconnect(self, code: int, reason: str) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_frame(Opcode.CLOSE, encode_close_payload(code, reason)))
        transport.close()
        abort_unflushed(self._loop, transport)

    def ping(self, payload: bytes = b"") -> None:
        """Send a transport-level ping frame (answered with a pong frame)."""
        frame = encode_frame(Opcode.PING, payload)
        if self._write_control(len(frame)):
            self.write_raw(frame)


async def serve_tcp(
    host: str,
    port: int,
    on_connection: Callable[[PacketConnection], None],
    *,
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    clock: Callable[[], float] | None = None,
    max_inbox: int = DEFAULT_MAX_INBOX,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen for TCP peers; ``on_connection`` is called (in the loop) for each one.

    ``clock`` stamps each connection's ``last_activity`` (default: the loop's time). A
    peer that does not read what we send is not read either until it catches up.
    ``reuse_port`` (SO_REUSEPORT) lets several processes listen on one port, the kernel
    spreading new connections over them (``cirno up --workers``).
    """
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: TcpConnection(
            max_packet_size=max_packet_size,
            max_send_buffer=max_send_buffer,
            max_inbox=max_inbox,
            on_connected=on_connection,
            clock=clock,
            pause_reading_while_blocked=True,
        ),
        host,
        port,
        reuse_address=True,
        reuse_port=reuse_port or None,
        backlog=listen_backlog(),
    )


async def connect_tcp(
    host: str,
    port: int,
    *,
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
) -> TcpConnection:
    """Open a TCP connection to ``host:port``."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: TcpConnection(max_packet_size=max_packet_size, max_send_buffer=max_send_buffer),
        host,
        port,
    )
    return protocol
