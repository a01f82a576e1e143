"""Bad input gets a clear status or close reason on that connection only.

A bystander logged in before the first bad client must still get pongs after each
case, which shows the processes keep serving everyone else.
"""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator

import anyio
import httpx
import jwt
import pytest
from picows import WSMsgType

from cirno.harness import ADMIN_TOKEN, Cluster, RawClient, make_token
from data_plane.cluster.protocol import HANDSHAKE_COMMAND, META_GATEWAY, META_SECRET
from data_plane.transport.connection import CloseCode
from data_plane.transport.tcp import TcpConnection
from data_plane.transport.ws import WsConnection
from data_plane.wire import (
    LOGIC_MAGIC,
    BasicCode,
    BasicPacket,
    Command,
    LogicPacket,
    Meta,
    Status,
    pb,
)
from tests.e2e.conftest import OTHER_SECRET, OTHER_TENANT, SECRET, TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
async def bystander(cluster: Cluster) -> AsyncIterator[RawClient]:
    """A client that stays logged in while others misbehave."""
    client = await RawClient.websocket(cluster.ws_url)
    assert (await client.login(make_token(TENANT, "bystander", SECRET))).status == 0
    yield client
    assert (await client.ping()).code == BasicCode.PONG, "a bad client hurt a bystander"
    client.close()


async def _logged_in_ws(cluster: Cluster, account: str) -> RawClient:
    client = await RawClient.websocket(cluster.ws_url)
    assert (await client.login(make_token(TENANT, account, SECRET))).status == Status.SUCCESS
    return client


@pytest.mark.parametrize(
    ("payload", "reason_part"),
    [
        (b"\x00\x01garbage bytes that mean nothing", "magic"),
        (b"\xde\xad\xbe\xef" + b"\x00" * 12, "magic"),
        (LOGIC_MAGIC + struct.pack(">I", 1000) + b"\x0a\x02", "truncated"),
        (b"\xc3", "magic"),
    ],
    ids=["garbage", "wrong-magic", "truncated", "one-byte"],
)
async def test_bad_packets_before_login_close_with_protocol_error(
    cluster: Cluster, bystander: RawClient, payload: bytes, reason_part: str
) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    client.send_raw(payload)
    code, reason = await client.closed()
    assert code == CloseCode.PROTOCOL_ERROR
    assert reason_part in reason.lower()


async def test_bad_packet_after_login_closes_only_that_connection(
    cluster: Cluster, bystander: RawClient
) -> None:
    client = await _logged_in_ws(cluster, "mallory")
    client.send_raw(b"\xde\xad\xbe\xef not a packet")
    code, reason = await client.closed()
    assert code == CloseCode.PROTOCOL_ERROR
    assert "magic" in reason.lower()


async def test_oversized_websocket_message(cluster: Cluster, bystander: RawClient) -> None:
    client = await _logged_in_ws(cluster, "big")
    client.send_raw(LogicPacket.request("chat.user.talk", b"x" * 70_000).encode())
    code, _ = await client.closed()
    assert code == CloseCode.TOO_BIG


async def test_oversized_length_in_packet(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    client.send_raw(LOGIC_MAGIC + struct.pack(">I", 10_000_000) + b"\x00" * 16)
    code, reason = await client.closed()
    assert code in (CloseCode.TOO_BIG, CloseCode.PROTOCOL_ERROR)
    assert reason


async def test_text_frame_is_refused(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    assert isinstance(client.conn, WsConnection)
    transport = client.conn.ws_transport
    assert transport is not None
    transport.send(WSMsgType.TEXT, b'{"hello": "json"}')
    code, reason = await client.closed()
    assert code == CloseCode.UNSUPPORTED_DATA
    assert "text" in reason


async def test_tcp_frame_beyond_maximum(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.tcp(cluster.tcp_addr)
    raw = struct.pack(">BI", 0x2, 50_000_000)
    assert isinstance(client.conn, TcpConnection)
    client.conn.write_raw(raw)
    code, _ = await client.closed()
    assert code == CloseCode.TOO_BIG


async def test_tcp_unknown_opcode(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.tcp(cluster.tcp_addr)
    assert isinstance(client.conn, TcpConnection)
    client.conn.write_raw(struct.pack(">BI", 0x7, 3) + b"abc")
    code, reason = await client.closed()
    assert code == CloseCode.PROTOCOL_ERROR
    assert "opcode" in reason.lower()


def _expired() -> str:
    return make_token(TENANT, "eve", SECRET, ttl=-60)


def _alg_none() -> str:
    claims = {"acc": "eve", "app": TENANT, "exp": int(time.time()) + 60}
    return jwt.encode(claims, None, algorithm="none")


def _no_account() -> str:
    claims = {"app": TENANT, "exp": int(time.time()) + 60}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("make", "reason_part"),
    [
        (lambda: "", "empty"),
        (lambda: "not.a.jwt", "malformed"),
        (lambda: "abc", "malformed"),
        (_expired, "expired"),
        (lambda: make_token(TENANT, "eve", "a-completely-different-secret-000000"), "invalid"),
        (lambda: make_token(TENANT, "eve", OTHER_SECRET), "invalid"),
        (lambda: make_token(OTHER_TENANT, "eve", SECRET), "invalid"),
        (lambda: make_token("nosuchtenant", "eve", SECRET), "unknown tenant"),
        (_alg_none, "algorithm"),
        (_no_account, "acc"),
        (lambda: make_token(TENANT, "a,b", SECRET), "acc"),
    ],
    ids=[
        "empty",
        "two-dots",
        "garbage",
        "expired",
        "wrong-secret",
        "other-tenants-secret",
        "foreign-tenant-claim",
        "unknown-tenant",
        "alg-none",
        "no-acc",
        "comma-account",
    ],
)
async def test_bad_tokens_get_unauthorized(
    cluster: Cluster, bystander: RawClient, make: object, reason_part: str
) -> None:
    assert callable(make)
    token = make()
    for client in (
        await RawClient.websocket(cluster.ws_url),
        await RawClient.tcp(cluster.tcp_addr),
    ):
        answer = await client.login(token)
        assert answer.status == Status.UNAUTHORIZED
        message = answer.parse_body(pb.ErrorResp).message
        assert reason_part in message.lower(), message
        code, reason = await client.closed()
        assert code == CloseCode.UNAUTHORIZED
        assert reason == message


async def test_disabled_tenant_cannot_log_in(cluster: Cluster, bystander: RawClient) -> None:
    secret = "initech-secret-0123456789-abcdefghijkl"
    cluster.create_tenant("initech", secret)
    token = make_token("initech", "peter", secret)
    client = await RawClient.tcp(cluster.tcp_addr)
    assert (await client.login(token)).status == Status.SUCCESS
    client.close()
    async with httpx.AsyncClient(
        base_url=cluster.control_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as admin:
        patched = await admin.patch("/v1/tenants/initech", json={"status": "disabled"})
        assert patched.status_code == 200

    message = ""
    with anyio.fail_after(10):
        while "disabled" not in message:  # gateways pick the change up on their next poll
            client = await RawClient.tcp(cluster.tcp_addr)
            answer = await client.login(token)
            if answer.status == Status.SUCCESS:
                client.close()
                await anyio.sleep(0.2)
                continue
            message = answer.parse_body(pb.ErrorResp).message
            assert answer.status == Status.UNAUTHORIZED
            await client.closed()


async def test_request_before_login(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    seq = client.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="hi"), dest="bob")
    answer = await client.response(seq)
    assert answer.status == Status.UNAUTHORIZED
    assert "login.signin" in answer.parse_body(pb.ErrorResp).message
    code, _ = await client.closed()
    assert code == CloseCode.UNAUTHORIZED


async def test_ping_before_login_closes(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.tcp(cluster.tcp_addr)
    client.send_raw(BasicPacket.ping().encode())
    code, reason = await client.closed()
    assert code == CloseCode.UNAUTHORIZED
    assert "login.signin" in reason


async def test_malformed_login_body(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    seq = client.request(Command.LOGIN_SIGNIN, b"\xff\xff\xff\xff")
    answer = await client.response(seq)
    assert answer.status == Status.INVALID_PACKET_BODY
    await client.closed()


async def test_no_login_within_timeout(cluster: Cluster, bystander: RawClient) -> None:
    client = await RawClient.tcp(cluster.tcp_addr)
    code, reason = await client.closed(timeout=10)
    assert code == CloseCode.LOGIN_TIMEOUT
    assert "login" in reason


async def test_logic_node_refuses_a_wrong_cluster_secret(
    cluster: Cluster, bystander: RawClient
) -> None:
    link = await RawClient.tcp(cluster.logic_addr)
    hello = LogicPacket.request(
        HANDSHAKE_COMMAND, meta=(Meta(META_SECRET, "wrong"), Meta(META_GATEWAY, "intruder"))
    )
    link.send_raw(hello.encode())
    answer = await link.next_packet()
    assert isinstance(answer, LogicPacket)
    assert answer.status == Status.UNAUTHORIZED
    code, reason = await link.closed()
    assert code == CloseCode.UNAUTHORIZED
    assert "secret" in reason


async def test_logic_node_refuses_requests_without_handshake(
    cluster: Cluster, bystander: RawClient
) -> None:
    link = await RawClient.tcp(cluster.logic_addr)
    link.request(Command.LOGIN_SIGNIN, pb.LoginReq(token="x"))
    code, reason = await link.closed()
    assert code == CloseCode.POLICY_VIOLATION
    assert "handshake" in reason
