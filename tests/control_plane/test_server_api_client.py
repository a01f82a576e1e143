"""The control plane's logic-node client and its bounds, against real sockets.

A stand-in logic node (``serve_tcp`` on loopback) accepts the control-plane handshake
and then, per test, never answers or drops the link; the route test runs with no logic
node registered at all. What a live logic node answers is in ``tests/e2e``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from anyio.lowlevel import checkpoint
from fastapi.testclient import TestClient

from control_plane.app import create_app
from control_plane.logic_client import LogicClient, LogicUnavailable
from data_plane.cluster.protocol import HANDSHAKE_COMMAND, META_SECRET
from data_plane.cluster.server_api import META_ROLE, PRESENCE, ROLE_CONTROL
from data_plane.transport.connection import PacketConnection
from data_plane.transport.tcp import serve_tcp
from data_plane.wire import LogicPacket, decode_packet
from tests.control_plane.conftest import ADMIN, CLUSTER_SECRET, FakeClock, settings_for


class StandIn:
    """Answers the handshake of a control link with the right secret; then ``mode``:
    ``silent`` never answers, ``drop`` closes the link on the first request."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.roles: list[str | None] = []

    def accept(self, conn: PacketConnection) -> None:
        def on_batch(batch: list[bytes]) -> None:
            for raw in batch:
                packet = decode_packet(raw)
                assert isinstance(packet, LogicPacket)
                if packet.command == HANDSHAKE_COMMAND:
                    self.roles.append(packet.meta_value(META_ROLE))
                    if packet.meta_value(META_SECRET) != CLUSTER_SECRET:
                        conn.send(packet.replace(meta=()).response(status=105).encode())
                        conn.close(4001, "wrong secret")
                        return
                    conn.send(packet.replace(meta=()).response().encode())
                elif self.mode == "drop":
                    conn.close(1011, "gone")

        conn.set_receiver(on_batch)


@pytest.fixture
async def silent() -> AsyncIterator[tuple[StandIn, str]]:
    node = StandIn("silent")
    server = await serve_tcp("127.0.0.1", 0, node.accept)
    yield node, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


def client(
    timeout: float = 5.0, max_in_flight: int = 4, secret: str = CLUSTER_SECRET
) -> LogicClient:
    return LogicClient(
        client_id="control:test",
        cluster_secret=secret,
        timeout=timeout,
        max_in_flight=max_in_flight,
    )


@pytest.mark.anyio
async def test_a_call_ends_with_503_reason_when_the_node_is_silent(
    silent: tuple[StandIn, str],
) -> None:
    node, address = silent
    logic = client(timeout=0.3)
    with pytest.raises(LogicUnavailable, match=r"no logic node answered within 0\.3 s"):
        await logic.call([address], PRESENCE, "acme", "{system}", {"accounts": ["a"]})
    assert node.roles == [ROLE_CONTROL]  # the link declared itself a control link
    await logic.aclose()


@pytest.mark.anyio
async def test_calls_beyond_the_cap_are_refused_at_once(silent: tuple[StandIn, str]) -> None:
    node, address = silent
    logic = client(timeout=5.0, max_in_flight=1)

    async def waiting() -> None:
        await logic.call([address], PRESENCE, "acme", "{system}", {"accounts": ["a"]})

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiting)
        with anyio.fail_after(2):
            while not node.roles:  # until the first call's link is up: it is in flight
                await checkpoint()
        with anyio.fail_after(1), pytest.raises(LogicUnavailable, match="1 server-API calls"):
            await logic.call([address], PRESENCE, "acme", "{system}", {"accounts": []})
        tg.cancel_scope.cancel()
    await logic.aclose()


@pytest.mark.anyio
async def test_a_lost_link_fails_the_waiting_call_at_once() -> None:
    server = await serve_tcp("127.0.0.1", 0, StandIn("drop").accept)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    logic = client(timeout=30.0)
    with anyio.fail_after(5), pytest.raises(LogicUnavailable, match="lost"):
        await logic.call([address], PRESENCE, "acme", "{system}", {"accounts": ["a"]})
    await logic.aclose()
    server.close()


@pytest.mark.anyio
async def test_no_node_or_a_refused_handshake_is_unavailable(silent: tuple[StandIn, str]) -> None:
    _, address = silent
    logic = client(secret="wrong")
    with pytest.raises(LogicUnavailable, match="no logic node is registered"):
        await logic.call([], PRESENCE, "acme", "{system}", {})
    with pytest.raises(LogicUnavailable, match="refused the handshake"):
        await logic.call([address], PRESENCE, "acme", "{system}", {})
    with pytest.raises(LogicUnavailable, match="no logic node is reachable"):
        await logic.call(["127.0.0.1:1", "x:validatorUrl"], PRESENCE, "acme", "{system}", {})
    await logic.aclose()


@pytest.fixture
def app_client(sqlite_url: str, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(sqlite_url, clock=clock))) as test_client:
        yield test_client


def test_routes_answer_503_with_retry_after_without_a_logic_node(app_client: TestClient) -> None:
    created = app_client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
    key = {"X-Api-Key": created.json()["api_key"]}
    answer = app_client.post(
        "/v1/tenants/acme/messages", json={"to": "bob", "client_msg_id": "1"}, headers=key
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert "no logic node is registered as live" in answer.json()["detail"]
    answer = app_client.get("/v1/tenants/acme/presence?accounts=a,b", headers=key)
    assert answer.status_code == 503
