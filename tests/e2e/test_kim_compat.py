"""A kim client (no ``client_version`` at login) gets kim's statuses and times; a client
that names its version keeps cirno's (``data_plane/gateway/kim_compat.py``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

from cirno.harness import Cluster, RawClient, make_token
from data_plane.gateway.kim_compat import NANOSECONDS_PER_MILLISECOND
from data_plane.wire import BasicCode, Command, Status, pb
from tests.e2e.conftest import SECRET, TENANT
from tests.e2e.test_chat import unique

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


Online = Callable[[str, str], Awaitable[RawClient]]


@pytest.fixture
async def online(cluster: Cluster) -> AsyncIterator[Online]:
    """Logs an account in with a ``client_version`` ("" as kim's SDK); closes them all."""
    clients: list[RawClient] = []

    async def log_in(account: str, client_version: str) -> RawClient:
        client = await RawClient.websocket(cluster.ws_url)
        clients.append(client)
        token = make_token(TENANT, account, SECRET)
        answer = await client.login(token, client_version=client_version)
        assert answer.status == Status.SUCCESS, answer
        return client

    yield log_in
    for client in clients:
        client.close()
    await anyio.sleep(0.05)  # let the loop finish closing the sockets


async def _ask(client: RawClient, command: str, body: object, dest: str = "") -> tuple[int, str]:
    answer = await client.response(client.request(command, body, dest=dest))
    return answer.status, answer.parse_body(pb.ErrorResp).message


async def test_unknown_group_is_an_ordinary_error_for_a_kim_client(online: Online) -> None:
    kim = await online(unique("kim"), "")
    sdk = await online(unique("sdk"), "1.0.0")
    unknown = pb.GroupGetReq(group_id="no-such-group")
    # kim's web SDK drops the session on a status >= 400: a kim client gets 100.
    status, why = await _ask(kim, Command.CHAT_GROUP_DETAIL, unknown)
    assert status == Status.NO_DESTINATION < 400
    assert "no-such-group" in why  # the reason is kept
    assert (await kim.ping()).code == BasicCode.PONG  # the connection stays open
    status, again = await _ask(kim, Command.CHAT_GROUP_DETAIL, unknown)
    assert (status, again) == (Status.NO_DESTINATION, why)
    # cirno's SDK keeps the precise status and the same reason.
    assert await _ask(sdk, Command.CHAT_GROUP_DETAIL, unknown) == (Status.NOT_FOUND, why)


async def test_gateway_errors_are_mapped_for_a_kim_client(online: Online) -> None:
    kim = await online(unique("kim"), "")
    sdk = await online(unique("sdk"), "1.0.0")
    again = pb.LoginReq(token=make_token(TENANT, "x", SECRET))
    # A second login is refused by the gateway itself with Forbidden (403).
    assert await _ask(sdk, Command.LOGIN_SIGNIN, again) == (Status.FORBIDDEN, "already logged in")
    assert await _ask(kim, Command.LOGIN_SIGNIN, again) == (
        Status.NO_DESTINATION,
        "already logged in",
    )
    assert (await kim.ping()).code == BasicCode.PONG


async def test_send_time_is_in_nanoseconds_for_kim_and_milliseconds_for_the_sdk(
    online: Online,
) -> None:
    kim_name, sdk_name = unique("kim"), unique("sdk")
    kim = await online(kim_name, "")
    sdk = await online(sdk_name, "1.0.0")
    before_ms = int(time.time() * 1000)

    status, sent = await _talk(kim, sdk_name, "from kim")
    assert status == Status.SUCCESS
    pushed = (await sdk.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert pushed.messageId == sent.messageId
    # The same message: nanoseconds in kim's answer, milliseconds in the SDK's push.
    assert sent.sendTime == pushed.sendTime * NANOSECONDS_PER_MILLISECOND
    assert abs(pushed.sendTime - before_ms) < 60_000

    status, reply = await _talk(sdk, kim_name, "from sdk")
    assert status == Status.SUCCESS
    kim_push = (await kim.push(Command.CHAT_USER_TALK)).parse_body(pb.MessagePush)
    assert kim_push.messageId == reply.messageId
    assert kim_push.sendTime == reply.sendTime * NANOSECONDS_PER_MILLISECOND

    # The sync of a new login (a kim client syncs at login; a sync on this connection
    # leaves out what it already got as pushes) lists both, in nanoseconds.
    kim.close()
    again = await online(kim_name, "")
    seq = again.request(Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=0))
    page = (await again.response(seq)).parse_body(pb.MessageIndexResp)
    times = {entry.message_id: entry.send_time for entry in page.indexes}
    assert times[sent.messageId] == sent.sendTime
    assert times[reply.messageId] == kim_push.sendTime


async def _talk(client: RawClient, to: str, body: str) -> tuple[int, pb.MessageResp]:
    seq = client.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body=body), dest=to)
    answer = await client.response(seq)
    return answer.status, answer.parse_body(pb.MessageResp)
