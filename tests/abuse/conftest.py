"""The abuse suite: real ``cirno up`` processes on their defaults, attacked as a hostile
client would, each test asserting that the attacked process's memory stays under a
stated bound (VmRSS from /proc) and that the attack is answered or closed cleanly.

Every test keeps its load to a few seconds and a bounded number of bytes: the suite
runs in CI on a small shared machine.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from bench.procs import children, role_of
from cirno.harness import Cluster, RawClient, run_cluster

TENANT = "abuse"
SECRET = "abuse-secret-0123456789-abcdefghijkl"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``cirno up`` with its default limits (nothing relaxed) and one tenant."""
    with run_cluster(tmp_path_factory.mktemp("abuse")) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Close the clients a test left open."""
    yield
    for client in list(RawClient.opened):
        client.close()
    await anyio.sleep(0.3)  # the loop finishes closing their transports
    gc.collect()  # a transport left open is reported here, against this test


def role_pid(cluster: Cluster, role: str) -> int:
    """The pid of ``cirno up``'s child process running ``role``."""
    for pid in children(cluster.process.pid):
        if role_of(pid) == role:
            return pid
    raise AssertionError(f"no {role} process under cirno up")


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def deaf_socket(addr: tuple[str, int]) -> socket.socket:
    """A raw TCP socket with a tiny receive buffer: it sends and does not read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, addr)
    return sock


async def flood(sock: socket.socket, chunk: bytes, *, limit: int, seconds: float) -> int:
    """Send ``chunk`` repeatedly, up to ``limit`` bytes or ``seconds``, without reading;
    stops early when the peer stops reading (a send makes no progress for 0.5 s) or
    closes. Returns the bytes sent."""
    loop = asyncio.get_running_loop()
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < limit and time.monotonic() < deadline:
        try:
            with anyio.move_on_after(0.5) as scope:
                await loop.sock_sendall(sock, chunk)
        except OSError:
            break  # closed by the server
        if scope.cancelled_caught:
            break  # the server stopped reading us: back-pressure
        sent += len(chunk)
    return sent


async def drain(sock: socket.socket, *, seconds: float = 5.0) -> tuple[bytes, bool]:
    """Read until the server closes (or ``seconds`` pass); returns what was read and
    whether the server closed the connection. (A close frame queued behind megabytes of
    unread answers may be lost: the server drops what a peer leaves unread, and a reset
    discards it on our side too. The metrics and the log tell the reason then.)"""
    loop = asyncio.get_running_loop()
    parts: list[bytes] = []
    with anyio.move_on_after(seconds):
        while True:
            try:
                data = await loop.sock_recv(sock, 1 << 20)
            except OSError:
                return b"".join(parts), True
            if not data:
                return b"".join(parts), True
            parts.append(data)
    return b"".join(parts), False


def closes_with(metrics: str, code: int) -> float:
    """``cirno_gateway_closes_total`` for ``code`` in a metrics page."""
    prefix = f'cirno_gateway_closes_total{{code="{code}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def scrape(cluster: Cluster, role: str) -> str:
    """The metrics page of ``role``."""
    return httpx.get(cluster.metrics_urls[role], timeout=5.0).text
