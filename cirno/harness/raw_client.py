"""A minimal protocol client over one real connection (WebSocket or TCP).

It speaks the wire protocol through the same transports and codec as the gateway, with
no SDK logic in between, so a test sees exactly the packets and close codes the server
sends.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import ClassVar

import anyio

from data_plane.transport.connection import PacketConnection
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import connect_tcp
from data_plane.transport.ws import connect_ws
from data_plane.wire import (
    BasicPacket,
    Command,
    Flag,
    LogicPacket,
    Packet,
    decode_packet,
    pb,
)

RAW_CLIENT_VERSION = "raw-client"
"""What :meth:`RawClient.login` sends as ``client_version`` unless told otherwise."""


class RawClient:
    """A minimal protocol client over one real connection, for end-to-end tests."""

    opened: ClassVar[weakref.WeakSet[RawClient]] = weakref.WeakSet()
    """Every client not yet garbage-collected, so a fixture can close what a test left."""

    def __init__(self, conn: PacketConnection) -> None:
        self.conn = conn
        RawClient.opened.add(self)
        self._sequence = 0
        self._pending: list[Packet] = []

    @classmethod
    async def websocket(cls, url: str) -> RawClient:
        """Connect over WebSocket."""
        return cls(await connect_ws(url))

    @classmethod
    async def tcp(cls, addr: tuple[str, int]) -> RawClient:
        """Connect over TCP."""
        return cls(await connect_tcp(*addr))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as one packet (one WebSocket message or one TCP frame)."""
        assert self.conn.send(data), f"send refused; connection closed: {self.conn.close_reason}"

    def request(self, command: str, body: bytes | object = b"", *, dest: str = "") -> int:
        """Send a request; returns its sequence."""
        self._sequence += 1
        payload = body.SerializeToString() if hasattr(body, "SerializeToString") else body
        assert isinstance(payload, bytes)
        packet = LogicPacket.request(command, payload, sequence=self._sequence, dest=dest)
        self.send_raw(packet.encode())
        return self._sequence

    async def _take(self, wanted: Callable[[Packet], bool], timeout: float) -> Packet:
        """The first packet (already received or arriving) that ``wanted`` accepts; the
        others are kept, in order, for later calls."""
        with anyio.fail_after(timeout):
            while True:
                for index, packet in enumerate(self._pending):
                    if wanted(packet):
                        return self._pending.pop(index)
                for raw in await self.conn.receive():
                    self._pending.append(decode_packet(raw))

    async def next_packet(self, timeout: float = 5.0) -> Packet:
        """The next packet from the server."""
        return await self._take(lambda packet: True, timeout)

    async def response(self, sequence: int, timeout: float = 5.0) -> LogicPacket:
        """The response to ``sequence``; pushes that arrive first are kept for later."""
        packet = await self._take(
            lambda p: (
                isinstance(p, LogicPacket) and p.flag == Flag.RESPONSE and p.sequence == sequence
            ),
            timeout,
        )
        assert isinstance(packet, LogicPacket)
        return packet

    async def push(self, command: str, timeout: float = 5.0) -> LogicPacket:
        """The next push of ``command``."""
        packet = await self._take(
            lambda p: isinstance(p, LogicPacket) and p.flag == Flag.PUSH and p.command == command,
            timeout,
        )
        assert isinstance(packet, LogicPacket)
        return packet

    async def login(
        self,
        token: str,
        *,
        device: str = "",
        client_version: str = RAW_CLIENT_VERSION,
        timeout: float = 5.0,
    ) -> LogicPacket:
        """Send ``login.signin`` and return its response. ``client_version=""`` logs in
        as a kim client would, which then gets kim's statuses and times
        (``data_plane/gateway/kim_compat.py``); the default gets cirno's."""
        req = pb.LoginReq(token=token, device=device, client_version=client_version)
        seq = self.request(Command.LOGIN_SIGNIN, req)
        return await self.response(seq, timeout)

    async def ping(self, timeout: float = 5.0) -> BasicPacket:
        """Send a BasicPkt ping and return the answer."""
        self.send_raw(BasicPacket.ping().encode())
        packet = await self._take(lambda p: isinstance(p, BasicPacket), timeout)
        assert isinstance(packet, BasicPacket)
        return packet

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """Wait until the server closes the connection; returns (code, reason)."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    for raw in await self.conn.receive():
                        self._pending.append(decode_packet(raw))
                except ConnectionClosed as exc:
                    return exc.code, exc.reason

    def close(self) -> None:
        """Close from the client side."""
        self.conn.close()
