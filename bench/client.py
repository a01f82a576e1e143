"""Logged-in WebSocket clients for the load generators.

The load generators speak the wire protocol directly: the project's sans-I/O codec
(:mod:`data_plane.wire`) over its picows transport (:func:`data_plane.transport.ws.
connect_ws`), with no SDK in between, so the client side costs as little as it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from picows import ws_connect

from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.ws import WsConnection
from data_plane.wire import (
    DEFAULT_MAX_PACKET_SIZE,
    Command,
    Flag,
    LogicPacket,
    Status,
    decode_packet,
    pb,
)

LOGIN_SEQUENCE = 1


class BenchError(Exception):
    """A benchmark could not run as configured (login refused, timeout, ...)."""


async def connect(url: str, local_host: str | None = None) -> WsConnection:
    """A WebSocket connection to ``url``, from ``local_host`` (a loopback address such as
    127.0.0.2) when given: one source address has ~28,000 ephemeral ports, so the
    connection benchmark spreads its clients over several."""
    extra: dict[str, Any] = {} if local_host is None else {"local_addr": (local_host, 0)}
    _, listener = await ws_connect(
        lambda: WsConnection(max_packet_size=DEFAULT_MAX_PACKET_SIZE),
        url,
        websocket_handshake_timeout=10.0,
        max_frame_size=DEFAULT_MAX_PACKET_SIZE + 1024,
        enable_auto_pong=False,
        **extra,
    )
    assert isinstance(listener, WsConnection)
    return listener


async def open_client(
    url: str, token: str, *, timeout: float = 20.0, local_host: str | None = None
) -> WsConnection:
    """Connect to ``url`` and log in with ``token``; the connection is ready to send."""
    with anyio.fail_after(timeout):
        conn = await connect(url, local_host)
        login = LogicPacket.request(
            Command.LOGIN_SIGNIN,
            pb.LoginReq(token=token, client_version="cirno-bench"),
            sequence=LOGIN_SEQUENCE,
        )
        conn.send(login.encode())
        try:
            while True:
                for raw in await conn.receive():
                    packet = decode_packet(raw)
                    if (
                        isinstance(packet, LogicPacket)
                        and packet.flag == Flag.RESPONSE
                        and packet.sequence == LOGIN_SEQUENCE
                    ):
                        if packet.status != Status.SUCCESS:
                            conn.close()
                            raise BenchError(f"login refused with status {packet.status}")
                        return conn
        except ConnectionClosed as exc:
            raise BenchError(f"connection closed during login: {exc}") from exc


async def open_clients(
    url: str,
    tokens: Sequence[str],
    *,
    concurrency: int = 50,
    timeout: float = 60.0,
    local_host: str | None = None,
) -> list[WsConnection]:
    """Log in one client per token, ``concurrency`` at a time; in the order of ``tokens``.

    If any login fails, the clients already open are closed and the error propagates.
    """
    clients: list[WsConnection | None] = [None] * len(tokens)
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            clients[index] = await open_client(url, tokens[index], local_host=local_host)

    try:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                for index in range(len(tokens)):
                    tg.start_soon(one, index)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await close_all([c for c in clients if c is not None])
        raise
    return [c for c in clients if c is not None]


async def close_all(clients: Sequence[WsConnection], timeout: float = 5.0) -> None:
    """Close every client (normal closure) and wait until their sockets are closed."""
    for conn in clients:
        conn.close()
    with anyio.move_on_after(timeout):
        for conn in clients:
            transport = conn.ws_transport
            if transport is not None:
                await transport.wait_disconnected()


async def wait_login_ready(url: str, token: str, timeout: float = 20.0) -> None:
    """Retry a login until it succeeds: a new tenant reaches the gateway within its
    refresh interval, and a login before that is refused."""
    with anyio.fail_after(timeout):
        while True:
            try:
                conn = await open_client(url, token)
            except BenchError:
                await anyio.sleep(0.2)
                continue
            await close_all([conn])
            return
