"""Listeners queue a burst of connections beyond asyncio's default backlog of 100.

Over real loopback sockets: while the event loop is busy (here: blocked by the test
itself, as a login burst keeps it busy), the kernel completes handshakes only up to
the listener's backlog and drops further SYNs, which their clients retry a second
later. With the kernel's ``somaxconn`` as backlog, a burst of 300 connects completes
at once for the WebSocket and the TCP listener alike.
"""

from __future__ import annotations

import asyncio
import select
import socket
from pathlib import Path

import pytest

from data_plane.transport.backlog import FALLBACK_BACKLOG, listen_backlog
from data_plane.transport.tcp import serve_tcp
from data_plane.transport.ws import serve_ws

pytestmark = pytest.mark.anyio

BURST = 300


def _connects_completed(port: int, count: int, wait: float) -> int:
    """Start ``count`` non-blocking connects; how many complete within ``wait`` s."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            socks.append(sock)
        pending = set(socks)
        done = 0
        # The loop that would accept is blocked by this very call: only the kernel's
        # queue decides which handshakes complete.
        while pending:
            _, writable, _ = select.select([], list(pending), [], wait)
            if not writable:
                break
            for sock in writable:
                pending.discard(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done += 1
        return done
    finally:
        for sock in socks:
            sock.close()


def test_backlog_is_the_kernels_somaxconn(tmp_path: Path) -> None:
    setting = tmp_path / "somaxconn"
    setting.write_text("8192\n")
    assert listen_backlog(setting) == 8192
    setting.write_text("garbage")
    assert listen_backlog(setting) == FALLBACK_BACKLOG
    assert listen_backlog(tmp_path / "absent") == FALLBACK_BACKLOG


@pytest.mark.skipif(listen_backlog() < BURST + 10, reason="somaxconn below the burst here")
@pytest.mark.parametrize("kind", ["tcp", "ws"])
async def test_a_burst_beyond_100_is_queued_not_dropped(kind: str) -> None:
    accepted: list[object] = []
    if kind == "tcp":
        server = await serve_tcp("127.0.0.1", 0, accepted.append)
    else:
        server = await serve_ws("127.0.0.1", 0, accepted.append)
    try:
        port = server.sockets[0].getsockname()[1]
        assert _connects_completed(port, BURST, wait=0.5) == BURST
    finally:
        server.close()
        await asyncio.sleep(0)
