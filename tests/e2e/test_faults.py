"""Failures under real processes: MySQL unreachable, Redis restarted, the control plane
stopped, a logic node killed, a gateway drained. Nothing acknowledged is lost.

MySQL is reached through a TCP proxy the test can cut; Redis is a private
``redis-server`` the test restarts; every role is its own ``cirno <role>`` process.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

from cirno.harness import RawClient, Topology, make_token, run_topology
from cirno.tcp_proxy import TcpProxy
from data_plane.cluster.selection import rendezvous_pick
from data_plane.transport.connection import CloseCode
from data_plane.wire import Command, Status, pb
from tests.private_redis import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.anyio]

TENANT = "faulty"
SECRET = "faulty-tenant-secret-0123456789-abcdef"


@pytest.fixture(scope="module")
def mysql_proxy(mysql_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A cuttable proxy to the module's MySQL database and the URL through it."""
    parts = urlsplit(mysql_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 3306))
    netloc = f"{parts.username or 'root'}@127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    proxy.close()


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory,
    mysql_proxy: tuple[TcpProxy, str],
    redis_server: PrivateRedis,
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("faults")),
        database_url=mysql_proxy[1],
        session_url=redis_server.url,
        session_prefix="faults",
        logic_nodes=2,
        gateways=2,
        extra_env={"CIRNO_LOCATION_REFRESH_INTERVAL": "1"},
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


def account(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def login(url: str, name: str) -> RawClient:
    client = await RawClient.websocket(url)
    answer = await client.login(make_token(TENANT, name, SECRET), timeout=20)
    assert answer.status == Status.SUCCESS, answer
    return client


async def talk(client: RawClient, to: str, body: str, cmid: str) -> tuple[int, int]:
    """(status, message id) of one send."""
    seq = client.request(
        Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=body, client_msg_id=cmid), dest=to
    )
    answer = await client.response(seq, timeout=30)
    message_id = answer.parse_body(pb.MessageResp).messageId if answer.status == 0 else 0
    return answer.status, message_id


async def pull_all(client: RawClient) -> list[int]:
    ids: list[int] = []
    cursor = 0
    while True:
        seq = client.request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=cursor))
        answer = await client.response(seq, timeout=30)
        assert answer.status == Status.SUCCESS, answer
        page = answer.parse_body(pb.MessageIndexResp)
        ids.extend(entry.message_id for entry in page.indexes)
        if not page.has_more:
            return ids
        cursor = page.indexes[-1].message_id


async def test_mysql_unreachable_never_acknowledges_falsely(
    topology: Topology, mysql_proxy: tuple[TcpProxy, str]
) -> None:
    proxy = mysql_proxy[0]
    sender_name, receiver_name = account("s"), account("r")
    sender = await login(topology.ws_urls[0], sender_name)
    receiver = await login(topology.ws_urls[1], receiver_name)
    acked: list[int] = []
    status, mid = await talk(sender, receiver_name, "before", "c-0")
    assert status == Status.SUCCESS
    acked.append(mid)

    proxy.cut()
    try:
        failed: list[str] = []
        for i in range(1, 4):
            status, mid = await talk(sender, receiver_name, f"during {i}", f"c-{i}")
            assert status == Status.SYSTEM_EXCEPTION, "a send was acknowledged without MySQL"
            failed.append(f"c-{i}")
    finally:
        proxy.restore()

    # Recovery: the client resends with the same ids and gets them stored exactly once.
    with anyio.fail_after(60):
        for i, cmid in enumerate(failed, start=1):
            while True:
                status, mid = await talk(sender, receiver_name, f"during {i}", cmid)
                if status == Status.SUCCESS:
                    acked.append(mid)
                    break
                await anyio.sleep(0.5)
    pulled = await pull_all(receiver)
    assert pulled == acked
    sender.close()
    receiver.close()


async def test_redis_restart_fails_logins_clearly_then_recovers(
    topology: Topology, redis_server: PrivateRedis
) -> None:
    keeper_name = account("keep")
    keeper = await login(topology.ws_urls[1], keeper_name)  # its location dies with Redis
    redis_server.stop()
    try:
        client = await RawClient.websocket(topology.ws_urls[0])
        answer = await client.login(make_token(TENANT, account("x"), SECRET), timeout=30)
        assert answer.status == Status.SYSTEM_EXCEPTION
        assert "unavailable" in answer.parse_body(pb.ErrorResp).message
        code, _ = await client.closed()
        assert code == CloseCode.TRY_AGAIN_LATER
    finally:
        redis_server.start()
    with anyio.fail_after(30):
        while True:
            client = await RawClient.websocket(topology.ws_urls[0])
            answer = await client.login(make_token(TENANT, account("y"), SECRET), timeout=30)
            if answer.status == Status.SUCCESS:
                break
            await anyio.sleep(0.5)
    a_name, b_name = account("a"), account("b")
    a = await login(topology.ws_urls[0], a_name)
    b = await login(topology.ws_urls[1], b_name)
    status, mid = await talk(a, b_name, "after redis came back", "r-1")
    assert status == Status.SUCCESS
    push = (await b.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert push.messageId == mid
    # The connection from before the restart gets pushes again once its gateway has
    # re-asserted its location (every second here, every minute by default). Until then
    # a message to it is stored but not pushed: send again until one is pushed.
    sent: list[int] = []
    with anyio.fail_after(20):
        while True:
            status, mid = await talk(a, keeper_name, "you are back", f"r-2-{len(sent)}")
            assert status == Status.SUCCESS
            sent.append(mid)
            with anyio.move_on_after(1.0):  # a push comes within a round trip, if at all
                push = (await keeper.push(Command.CHAT_USER_TALK, timeout=20)).parse_body(
                    pb.MessagePush
                )
                break
    assert push.messageId in sent
    assert await pull_all(keeper) == sent  # the ones sent before the re-assert are stored
    for c in (client, a, b, keeper):
        c.close()


async def test_control_plane_stopped_data_plane_keeps_serving(topology: Topology) -> None:
    a_name, b_name = account("a"), account("b")
    a = await login(topology.ws_urls[0], a_name)  # the tenant is cached now
    # uvicorn re-raises SIGTERM after its graceful shutdown, hence -SIGTERM.
    assert topology.stop("control") in (0, -signal.SIGTERM)
    try:
        b = await login(topology.ws_urls[1], b_name)
        status, mid = await talk(a, b_name, "no control plane needed", "cp-1")
        assert status == Status.SUCCESS
        assert (await b.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush).messageId == mid
    finally:
        topology.start("control", "control", {})
    a.close()
    b.close()


async def test_killed_logic_node_moves_its_users(topology: Topology) -> None:
    nodes = {"logic-1": 0, "logic-2": 0}
    sender_name = account("owned")
    while rendezvous_pick(nodes, f"{TENANT}:{sender_name}") != "logic-1":
        sender_name = account("owned")
    receiver_name = account("r")
    sender = await login(topology.ws_urls[0], sender_name)
    receiver = await login(topology.ws_urls[1], receiver_name)
    status, first = await talk(sender, receiver_name, "via logic-1", "k-1")
    assert status == Status.SUCCESS

    topology.stop("logic-1", signal.SIGKILL)
    with anyio.fail_after(30):
        while True:  # the gateway notices the dead link and moves the user to logic-2
            status, second = await talk(sender, receiver_name, "via logic-2", "k-2")
            if status == Status.SUCCESS:
                break
            await anyio.sleep(0.2)
    assert await pull_all(receiver) == [first, second]
    sender.close()
    receiver.close()


async def test_sigterm_drains_a_gateway(topology: Topology) -> None:
    on_first = await login(topology.ws_urls[0], account("d"))
    on_second = await login(topology.ws_urls[1], account("e"))
    started = time.monotonic()
    assert topology.stop("gateway-1", signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - started < 10
    code, reason = await on_first.closed()
    assert code == CloseCode.GOING_AWAY
    assert "shutting down" in reason
    assert (await on_second.ping()).code == 2  # the other gateway goes on
    on_second.close()
