"""``cirno up --workers N``: N logic nodes and N gateways behind the same client ports.

Refused without a shared session store; with Redis, two gateways share the WebSocket
port (the kernel spreads the clients over both), every gateway links to both logic
workers, and clients connected through different gateways and served by different
logic nodes chat with each other.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import anyio
import pytest
import redis

from bench.client import close_all, open_clients, wait_login_ready
from bench.procs import children, role_of
from cirno.harness import make_token, run_cluster
from data_plane.transport.ws import WsConnection
from data_plane.wire import Command, Flag, LogicPacket, MessageType, Status, decode_packet, pb
from tests.cli.cli import assert_one_clear_line, cirno

pytestmark = pytest.mark.e2e

REDIS_URL = os.environ.get("CIRNO_TEST_REDIS_URL", "")
SECRET = "workers-secret-0123456789-abcdefghijklmn"
CLIENTS = 24


def test_workers_refuse_the_in_memory_session_store(tmp_path: Path) -> None:
    run = cirno("up", "--workers", "2", "--data-dir", str(tmp_path), env={"CIRNO_SESSION_URL": ""})
    assert_one_clear_line(run, "--workers 2", "CIRNO_SESSION_URL=redis://")
    assert not (tmp_path / "messages.db").exists()  # nothing was started


def _socket_count(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


async def _chat_in_a_ring(clients: list[WsConnection], accounts: list[str]) -> set[str]:
    """Client i sends one message to client i+1; the bodies pushed, as received."""
    pushed: set[str] = set()
    answered = 0
    for i, conn in enumerate(clients):
        req = pb.MessageReq(type=MessageType.TEXT, body=f"from {accounts[i]}")
        dest = accounts[(i + 1) % len(accounts)]
        conn.send(
            LogicPacket.request(str(Command.CHAT_USER_TALK), req, sequence=2, dest=dest).encode()
        )

    async def receive(conn: WsConnection) -> None:
        nonlocal answered
        got_push = got_answer = False
        while not (got_push and got_answer):
            for raw in await conn.receive():
                packet = decode_packet(raw)
                if not isinstance(packet, LogicPacket):
                    continue
                if packet.flag == Flag.RESPONSE and packet.sequence == 2:
                    assert packet.status == Status.SUCCESS
                    got_answer = True
                    answered += 1
                elif packet.flag == Flag.PUSH:
                    pushed.add(packet.parse_body(pb.MessagePush).body)
                    got_push = True

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for conn in clients:
                tg.start_soon(receive, conn)
    assert answered == len(clients)
    return pushed


@pytest.mark.skipif(not REDIS_URL, reason="CIRNO_TEST_REDIS_URL is not set")
def test_two_workers_share_the_client_port_and_chat_across_nodes(tmp_path: Path) -> None:
    prefix = f"cirnotest:{uuid.uuid4().hex[:8]}"
    try:
        _run_two_workers(tmp_path, prefix)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def _run_two_workers(tmp_path: Path, prefix: str) -> None:
    with run_cluster(
        tmp_path, CIRNO_WORKERS="2", CIRNO_SESSION_URL=REDIS_URL, CIRNO_SESSION_PREFIX=prefix
    ) as cluster:
        roles = {pid: role_of(pid) for pid in children(cluster.process.pid)}
        assert sorted(roles.values()) == ["control", "gateway", "gateway", "logic", "logic"]
        gateways = [pid for pid, role in roles.items() if role == "gateway"]
        cluster.create_tenant("wk", SECRET)
        anyio.run(wait_login_ready, cluster.ws_url, make_token("wk", "probe", SECRET))
        before = [_socket_count(pid) for pid in gateways]
        accounts = [f"u{i}" for i in range(CLIENTS)]

        async def scenario() -> set[str]:
            tokens = [make_token("wk", a, SECRET) for a in accounts]
            clients = await open_clients(cluster.ws_url, tokens)
            try:
                after = [_socket_count(pid) for pid in gateways]
                # The kernel spread the clients over both gateways (SO_REUSEPORT).
                assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
                return await _chat_in_a_ring(clients, accounts)
            finally:
                await close_all(clients)

        pushed = anyio.run(scenario)
        log = cluster.log()
    assert pushed == {f"from {a}" for a in accounts}
    # Both logic workers came up as their own nodes, linked from both gateways.
    assert "logic-1" in log and "logic-2" in log
    assert "Traceback" not in log
