"""Row 1: ping frames from a peer that never reads its pongs, before login (gateway),
after login (gateway) and before the handshake (logic node's link port).

Before the fix one such socket grew the gateway by 1.5 GB in 3.7 s and the logic node
by 500 MB in 0.8 s. Now a connection that has not logged in (or shaken hands) has a
tiny budget and is closed with a reason once it is spent; a logged-in one that does not
read is no longer read either (its memory stays at the send bound) until it catches up.
Bound asserted: each attacked process grows by less than ``GROWTH_BOUND``.
"""

from __future__ import annotations

import pytest

from cirno.harness import Cluster, make_token
from data_plane.transport.close import decode_close_payload
from data_plane.transport.connection import CloseCode
from data_plane.wire import (
    Command,
    FrameDecoder,
    LogicPacket,
    Opcode,
    encode_frame,
    pb,
)
from tests.abuse.conftest import (
    MIB,
    SECRET,
    TENANT,
    closes_with,
    deaf_socket,
    drain,
    flood,
    role_pid,
    rss,
    scrape,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

GROWTH_BOUND = 48 * MIB
"""What one attacking socket may add to a process (the send bound is 4 MiB)."""
FLOOD_BYTES = 64 * MIB
"""What the attacker sends at most, per socket (the old bug needed ~100 MiB for 1.5 GB)."""


def pings(payload_size: int, total: int = 256 * 1024) -> bytes:
    """Ping frames of ``payload_size`` bytes each, about ``total`` bytes of them."""
    frame = encode_frame(Opcode.PING, b"p" * payload_size)
    return frame * max(1, total // len(frame))


def close_code_in(stream: bytes) -> int | None:
    """The code of the close frame in what the server sent, if it sent one."""
    decoder = FrameDecoder(max_payload=1 << 20)
    code = None
    for frame in decoder.feed(stream):
        if frame.opcode == Opcode.CLOSE:
            code, _ = decode_close_payload(frame.payload)
    return code


async def test_gateway_before_login_large_pings_are_refused_at_once(cluster: Cluster) -> None:
    gateway = role_pid(cluster, "gateway")
    before = rss(gateway)
    sock = await deaf_socket(cluster.tcp_addr)
    try:
        await flood(sock, pings(64 * 1024), limit=FLOOD_BYTES, seconds=2.0)
        stream, closed = await drain(sock)
        assert closed and close_code_in(stream) == CloseCode.TOO_BIG
    finally:
        sock.close()
    assert rss(gateway) - before < GROWTH_BOUND


async def test_gateway_before_login_a_deaf_peer_is_closed_at_its_tiny_bound(
    cluster: Cluster,
) -> None:
    gateway = role_pid(cluster, "gateway")
    before = rss(gateway)
    slow_closes = closes_with(scrape(cluster, "gateway"), CloseCode.SLOW_CONSUMER)
    sock = await deaf_socket(cluster.tcp_addr)
    try:
        await flood(sock, pings(4 * 1024), limit=FLOOD_BYTES, seconds=3.0)
        assert rss(gateway) - before < GROWTH_BOUND
        _, closed = await drain(sock)
        assert closed
    finally:
        sock.close()
    after = closes_with(scrape(cluster, "gateway"), CloseCode.SLOW_CONSUMER)
    assert after == slow_closes + 1


async def test_gateway_after_login_a_deaf_peer_is_not_read(cluster: Cluster) -> None:
    gateway = role_pid(cluster, "gateway")
    before = rss(gateway)
    sock = await deaf_socket(cluster.tcp_addr)
    try:
        token = make_token(TENANT, "deaf", SECRET)
        login = LogicPacket.request(
            Command.LOGIN_SIGNIN, pb.LoginReq(token=token), sequence=1
        ).encode()
        await flood(sock, encode_frame(Opcode.BINARY, login), limit=1, seconds=1.0)
        sent = await flood(sock, pings(60 * 1024), limit=FLOOD_BYTES, seconds=3.0)
        # The gateway stopped reading long before the attacker's budget ran out.
        assert sent < FLOOD_BYTES
        assert rss(gateway) - before < GROWTH_BOUND
    finally:
        sock.close()


async def test_logic_port_before_the_handshake(cluster: Cluster) -> None:
    logic = role_pid(cluster, "logic")
    before = rss(logic)
    large = await deaf_socket(cluster.logic_addr)
    small = await deaf_socket(cluster.logic_addr)
    try:
        await flood(large, pings(64 * 1024), limit=FLOOD_BYTES, seconds=2.0)
        stream, closed = await drain(large)
        assert closed and close_code_in(stream) == CloseCode.TOO_BIG
        await flood(small, pings(2 * 1024), limit=FLOOD_BYTES, seconds=3.0)
        assert rss(logic) - before < GROWTH_BOUND
        _, closed = await drain(small)
        assert closed
        assert "(4003: peer does not read: send buffer full)" in cluster.log()
    finally:
        large.close()
        small.close()
