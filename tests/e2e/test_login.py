"""Login, ping and kickout over real WebSocket and TCP connections to real processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import httpx
import pytest

from cirno.harness import Cluster, RawClient, make_token
from data_plane.transport.connection import CloseCode
from data_plane.wire import BasicCode, Command, Flag, Status, pb
from tests.e2e.conftest import SECRET, TENANT

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Connect = Callable[[Cluster], Awaitable[RawClient]]


async def _ws(cluster: Cluster) -> RawClient:
    return await RawClient.websocket(cluster.ws_url)


async def _tcp(cluster: Cluster) -> RawClient:
    return await RawClient.tcp(cluster.tcp_addr)


TRANSPORTS = pytest.mark.parametrize("connect", [_ws, _tcp], ids=["ws", "tcp"])


@TRANSPORTS
async def test_login_answers_channel_with_account(cluster: Cluster, connect: Connect) -> None:
    client = await connect(cluster)
    answer = await client.login(make_token(TENANT, "alice", SECRET))
    assert answer.status == Status.SUCCESS
    assert answer.flag == Flag.RESPONSE
    assert answer.sequence == 1
    assert answer.meta == ()
    resp = answer.parse_body(pb.LoginResp)
    assert resp.account == "alice"
    assert "alice" in resp.channelId
    client.close()


@TRANSPORTS
async def test_ping_gets_pong(cluster: Cluster, connect: Connect) -> None:
    client = await connect(cluster)
    await client.login(make_token(TENANT, "pinger", SECRET))
    pong = await client.ping()
    assert pong.code == BasicCode.PONG
    client.close()


@TRANSPORTS
async def test_second_login_same_device_kicks_the_first(cluster: Cluster, connect: Connect) -> None:
    token = make_token(TENANT, "bob", SECRET)
    first = await connect(cluster)
    first_channel = (await first.login(token, device="phone")).parse_body(pb.LoginResp).channelId
    other_device = await connect(cluster)
    assert (await other_device.login(token, device="web")).status == Status.SUCCESS

    second = await connect(cluster)
    answer = await second.login(token, device="phone")
    assert answer.status == Status.SUCCESS
    second_channel = answer.parse_body(pb.LoginResp).channelId
    assert second_channel != first_channel

    kick = await first.push(Command.LOGIN_SIGNIN)
    assert kick.parse_body(pb.KickoutNotify).channelId == first_channel
    code, reason = await first.closed()
    assert code == CloseCode.KICKED_OUT
    assert "kicked out" in reason

    # The other device and the new login stay online.
    assert (await other_device.ping()).code == BasicCode.PONG
    assert (await second.ping()).code == BasicCode.PONG
    second.close()
    other_device.close()


async def test_kickout_across_transports(cluster: Cluster) -> None:
    token = make_token(TENANT, "carol", SECRET)
    over_tcp = await _tcp(cluster)
    assert (await over_tcp.login(token)).status == Status.SUCCESS
    over_ws = await _ws(cluster)
    assert (await over_ws.login(token)).status == Status.SUCCESS
    await over_tcp.push(Command.LOGIN_SIGNIN)
    assert (await over_tcp.closed())[0] == CloseCode.KICKED_OUT
    over_ws.close()


async def test_stale_signout_keeps_the_newer_login(cluster: Cluster) -> None:
    """The kicked connection's disconnect must not remove the new location: a third
    login on that device still kicks the second one (so the second was recorded)."""
    token = make_token(TENANT, "dave", SECRET)
    first = await _ws(cluster)
    await first.login(token)
    second = await _ws(cluster)
    await second.login(token)
    await first.closed()
    third = await _tcp(cluster)
    await third.login(token)
    kick = await second.push(Command.LOGIN_SIGNIN)
    assert kick.flag == Flag.PUSH
    third.close()


@TRANSPORTS
async def test_explicit_signout_closes(cluster: Cluster, connect: Connect) -> None:
    client = await connect(cluster)
    await client.login(make_token(TENANT, "erin", SECRET))
    seq = client.request(Command.LOGIN_SIGNOUT)
    assert (await client.response(seq)).status == Status.SUCCESS
    code, reason = await client.closed()
    assert code == CloseCode.NORMAL
    assert reason == "signed out"


@TRANSPORTS
async def test_unknown_command_is_not_implemented(cluster: Cluster, connect: Connect) -> None:
    client = await connect(cluster)
    await client.login(make_token(TENANT, "frank", SECRET))
    seq = client.request("chat.no.such.command")
    answer = await client.response(seq)
    assert answer.status == Status.NOT_IMPLEMENTED
    assert "chat.no.such.command" in answer.parse_body(pb.ErrorResp).message
    assert (await client.ping()).code == BasicCode.PONG  # the connection goes on
    client.close()


async def test_second_signin_on_a_live_connection_is_forbidden(cluster: Cluster) -> None:
    client = await _ws(cluster)
    token = make_token(TENANT, "gina", SECRET)
    await client.login(token)
    answer = await client.login(token)
    assert answer.status == Status.FORBIDDEN
    client.close()


# The exact idle and login deadlines are tested on a fake clock in
# tests/gateway/test_timers.py; here a real process must show the same behaviour, so
# these tests wait for what it does (a close), bounded, never for a fixed time.


async def test_idle_connection_times_out(cluster: Cluster) -> None:
    client = await _tcp(cluster)
    answer = await client.login(make_token(TENANT, "idler", SECRET))
    assert answer.status == Status.SUCCESS
    before = _closes(cluster, CloseCode.IDLE_TIMEOUT)
    code, reason = await client.closed(timeout=10)
    assert code == CloseCode.IDLE_TIMEOUT
    assert "idle" in reason
    for _ in range(100):  # the gateway counts the close once its task ended: up to 5 s
        if _closes(cluster, CloseCode.IDLE_TIMEOUT) > before:
            break
        await anyio.sleep(0.05)
    assert _closes(cluster, CloseCode.IDLE_TIMEOUT) == before + 1


async def test_pings_keep_a_connection_alive(cluster: Cluster) -> None:
    client = await _ws(cluster)
    assert (await client.login(make_token(TENANT, "keeper", SECRET))).status == Status.SUCCESS
    # A connection that logged in after it and stays silent: once the gateway closed that
    # one for idleness, more than the idle timeout has passed for the pinging one too.
    idler = await _ws(cluster)
    assert (await idler.login(make_token(TENANT, "sleeper", SECRET))).status == Status.SUCCESS
    closed: tuple[int, str] | None = None
    with anyio.fail_after(10):  # the idle timeout is 3 s
        while closed is None:
            assert (await client.ping()).code == BasicCode.PONG
            with anyio.move_on_after(0.5):  # pings paced by the awaited close, not a sleep
                closed = await idler.closed(timeout=10)
    assert closed == (CloseCode.IDLE_TIMEOUT, "idle timeout")
    assert (await client.ping()).code == BasicCode.PONG
    client.close()


def _closes(cluster: Cluster, code: int) -> float:
    """The gateway's count of connections it closed with ``code`` (its metrics)."""
    text = httpx.get(cluster.metrics_urls["gateway"], timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'cirno_gateway_closes_total{{code="{code}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_clients_cannot_send_link_commands(cluster: Cluster) -> None:
    client = await _tcp(cluster)
    await client.login(make_token(TENANT, "sneaky", SECRET))
    for command in ("session.refresh", "cluster.handshake"):
        answer = await client.response(client.request(command))
        assert answer.status == Status.NOT_IMPLEMENTED
    client.close()
