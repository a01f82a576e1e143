"""One INFO line per login, refused login, kickout and disconnect, in the real log of
``cirno up``; no library chatter."""

from __future__ import annotations

import anyio
import pytest

from cirno.harness import Cluster, RawClient, make_token
from data_plane.transport.connection import CloseCode
from data_plane.wire import Status
from tests.e2e.conftest import SECRET, TENANT
from tests.e2e.test_chat import unique

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def _line(cluster: Cluster, *parts: str) -> str:
    """The first gateway log line with every one of ``parts`` (waits up to 5 s)."""
    with anyio.fail_after(5):
        while True:
            for line in cluster.log().splitlines():
                if "gateway[" in line and all(part in line for part in parts):
                    return line
            await anyio.sleep(0.05)


async def test_a_wrong_secret_leaves_tenant_reason_and_peer(cluster: Cluster) -> None:
    account = unique("mallory")
    client = await RawClient.websocket(cluster.ws_url)
    try:
        forged = make_token(TENANT, account, "not-the-tenant-secret-0123456789")
        assert (await client.login(forged)).status == Status.UNAUTHORIZED
        assert (await client.closed())[0] == CloseCode.UNAUTHORIZED
    finally:
        client.close()
    line = await _line(cluster, " INFO data_plane.gateway.events: login_refused ")
    assert f"tenant={TENANT} " in line
    assert 'reason="' in line and "status=105" in line
    assert " peer=127.0.0.1:" in line and "transport=ws" in line


async def test_login_kickout_and_disconnect_lines(cluster: Cluster) -> None:
    account = unique("events")
    token = make_token(TENANT, account, SECRET)
    first = await RawClient.tcp(cluster.tcp_addr)
    second = await RawClient.websocket(cluster.ws_url)
    try:
        assert (await first.login(token, device="phone")).status == Status.SUCCESS
        login = await _line(cluster, "events: login ", f"account={account} ", "transport=tcp")
        assert f"tenant={TENANT} " in login and "device=phone" in login
        assert " peer=127.0.0.1:" in login and "client_version=raw-client" in login
        # The same device logs in elsewhere: the first is kicked out.
        assert (await second.login(token, device="phone")).status == Status.SUCCESS
        assert (await first.closed())[0] == CloseCode.KICKED_OUT
        await _line(cluster, "events: kickout ", f"account={account} ", "transport=tcp")
        kicked = await _line(cluster, "events: disconnect ", f"account={account} ", "tcp")
        assert f"code={CloseCode.KICKED_OUT.value} " in kicked and "closed_by=server" in kicked
        second.close()
        gone = await _line(cluster, "events: disconnect ", f"account={account} ", "transport=ws")
        assert "closed_by=client" in gone
    finally:
        first.close()
        second.close()


async def test_library_chatter_stays_out_of_the_log(cluster: Cluster) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    assert (await client.login(make_token(TENANT, unique("quiet"), SECRET))).status == 0
    client.close()
    await _line(cluster, "events: disconnect ", "closed_by=client")
    chatty = [
        line
        for line in cluster.log().splitlines()
        if " INFO picows" in line or " INFO uvicorn" in line or " INFO alembic" in line
    ]
    assert chatty == []
