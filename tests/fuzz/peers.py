"""Blocking raw clients for the gateway fuzz: bytes out, events in, nothing interpreted.

A :class:`Peer` sends whatever it is given (valid packets, garbage, torn frames) and
reports what came back as :class:`Event` values: a packet, a transport pong, or the
end of the connection with the close code and reason the server gave (``code`` None:
the stream ended without a close frame or close handshake, which the fuzz counts as a
failure: every close must say why).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from data_plane.transport.close import decode_close_payload
from data_plane.wire import FRAME_HEADER_SIZE, Opcode, encode_frame

_HEAD = struct.Struct(">BI")


@dataclass(frozen=True, slots=True)
class Event:
    """What the server did: ``kind`` is ``packet``, ``pong`` or ``closed``."""

    kind: str
    data: bytes = b""
    code: int | None = None
    reason: str = ""


class Peer:
    """One raw connection to the gateway (TCP framing or WebSocket)."""

    kind = ""

    def send(self, packet: bytes) -> bool:
        """Send one packet (one frame or one binary message); False once closed."""
        raise NotImplementedError

    def next_event(self, timeout: float) -> Event | None:
        """The next thing the server did, or None when nothing happened in ``timeout``."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the connection without a close frame."""
        raise NotImplementedError


class TcpPeer(Peer):
    """A TCP client of the gateway's framing, on a blocking socket."""

    kind = "tcp"

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=5)
        self._buffer = bytearray()

    def send(self, packet: bytes) -> bool:
        return self.send_bytes(encode_frame(Opcode.BINARY, packet))

    def send_bytes(self, data: bytes) -> bool:
        """Send raw bytes outside the framing (bad opcodes, lying lengths, torn frames)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise
        except OSError:
            return False
        self._buffer += chunk
        return bool(chunk)

    def next_event(self, timeout: float) -> Event | None:
        deadline = time.monotonic() + timeout
        try:
            while len(self._buffer) < FRAME_HEADER_SIZE:
                if not self._fill(deadline):
                    return Event("closed")
            opcode, length = _HEAD.unpack_from(self._buffer)
            while len(self._buffer) < FRAME_HEADER_SIZE + length:
                if not self._fill(deadline):
                    return Event("closed")
        except TimeoutError:
            return None
        payload = bytes(self._buffer[FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + length])
        del self._buffer[: FRAME_HEADER_SIZE + length]
        if opcode == Opcode.CLOSE:
            code, reason = decode_close_payload(payload)
            return Event("closed", code=code, reason=reason)
        if opcode == Opcode.PONG:
            return Event("pong", payload)
        return Event("packet", payload)

    def abort(self) -> None:
        self.sock.close()


class WsPeer(Peer):
    """A WebSocket client of the gateway (websockets' blocking client)."""

    kind = "ws"

    def __init__(self, url: str) -> None:
        self.conn: ClientConnection = connect(
            url,
            compression=None,
            max_size=None,
            open_timeout=5,
            ping_interval=None,
            legacy=True,  # a plain connection, closed by abort() (not a context manager)
        )

    def send(self, packet: bytes) -> bool:
        try:
            self.conn.send(packet)
        except ConnectionClosed:
            return False
        return True

    def send_text(self, text: str) -> bool:
        """A text message (the protocol is binary only)."""
        try:
            self.conn.send(text)
        except ConnectionClosed:
            return False
        return True

    def next_event(self, timeout: float) -> Event | None:
        try:
            message = self.conn.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            received = exc.rcvd
            if received is None:
                return Event("closed")
            return Event("closed", code=received.code, reason=received.reason)
        if isinstance(message, str):
            return Event("packet", message.encode())
        return Event("packet", message)

    def abort(self) -> None:
        self.conn.socket.close()
