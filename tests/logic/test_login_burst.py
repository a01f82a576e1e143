"""A burst of logins, in process: a real gateway and logic node over loopback TCP, a
real Redis session store (own key prefix) with a deliberately small pool, and the SQL
message store on SQLite.

Without a bound, 300 logins at once were 300 concurrent session-store calls on a pool
of 8 connections: those that waited longer than ``socket_timeout`` (0.1 s here) for one failed
("No connection available") and their clients got SystemException. Through the
:class:`~data_plane.logic.handlers.login_gate.LoginGate` (fewer slots than the pool
has connections) every one of them succeeds, with its location stored. A sign-in
that cannot get a slot within the gate's patience is answered Unavailable and the
connection closes with 1013.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine

from cirno.harness import RawClient, make_token
from data_plane.cluster.tenants import TenantDirectory, TenantInfo, TenantKey
from data_plane.gateway.server import Gateway
from data_plane.gateway.settings import GatewaySettings
from data_plane.logic.context import GatewayHub
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.handlers.login_gate import LoginGate
from data_plane.logic.handlers.presence import Presence
from data_plane.logic.router import Handler, Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.schema import metadata
from data_plane.storage.messages.store import SqlMessageStore, open_sql_message_store
from data_plane.storage.sessions.redis import RedisSessionStore
from data_plane.storage.urls import sync_url
from data_plane.transport.connection import CloseCode
from data_plane.wire import Command, Status
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TENANT = "burst"
SECRET = "burst-secret-0123456789-abcdefghijklm"
UNREACHABLE = "http://127.0.0.1:9"
POOL = 8
"""Redis connections of the logic node: far fewer than the logins in flight."""
BURST = 300


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Rig:
    gateway: Gateway
    sessions: RedisSessionStore
    store: SqlMessageStore
    gate: LoginGate

    async def login(self, account: str) -> tuple[RawClient, int]:
        client = await RawClient.tcp(("127.0.0.1", self.gateway.tcp_port))
        answer = await client.login(make_token(TENANT, account, SECRET), timeout=20.0)
        return client, answer.status


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'messages.db'}"
    engine = create_engine(sync_url(url))
    metadata.create_all(engine)
    engine.dispose()
    sessions = RedisSessionStore.from_url(
        redis_url,
        prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        max_connections=POOL,
        socket_timeout=0.1,
    )
    hub = GatewayHub()
    gate = LoginGate(POOL - 2, patience=5.0)
    try:
        async with open_sql_message_store(url, node_id=1) as store, anyio.create_task_group() as tg:
            stores = TenantStores(store, None, tg, node_id=1)
            presence = Presence(sessions, hub)
            login = LoginHandlers(sessions, hub, stores, presence, gate=gate)
            handlers: dict[str, Handler] = {
                Command.LOGIN_SIGNIN: login.signin,
                Command.LOGIN_SIGNOUT: login.signout,
            }
            settings = LogicSettings(cluster_secret="s", node_id="logic-1", port=0)
            server = LogicServer(settings, Router(handlers, {}), hub)
            await tg.start(server.run)
            gateway_settings = GatewaySettings(
                cluster_secret="s",
                control_url=UNREACHABLE,
                gateway_id="gw-1",
                ws_port=0,
                tcp_port=0,
                logic_addrs=(("127.0.0.1", server.port),),
                logins_per_ip_per_second=0,
                tenant_logins_per_second=0,
            )
            directory = TenantDirectory(UNREACHABLE, "s")
            directory._tenants = {TENANT: TenantInfo(TENANT, True, (TenantKey("", SECRET),))}
            gateway = Gateway(gateway_settings, directory)
            await tg.start(gateway.run)
            await until(lambda: gateway.pool.ready.is_set())
            rig = Rig(gateway, sessions, store, gate)
            # One login first, alone: the pool's first connection and the scripts' first
            # load are start-up, not the burst, and on a busy machine they can outlast
            # the 0.1 s socket timeout this rig uses to make pool waits fail fast. It
            # stays logged in (its sign-out would take a slot of the gate meanwhile).
            warm, status = await rig.login("warm-up")
            assert status == Status.SUCCESS
            yield rig
            warm.close()
            tg.cancel_scope.cancel()
    finally:
        await sessions.aclose()


async def test_a_burst_of_logins_all_succeed_with_their_locations_stored(rig: Rig) -> None:
    statuses: dict[str, int] = {}
    clients: list[RawClient] = []

    async def one(account: str) -> None:
        client, statuses[account] = await rig.login(account)
        clients.append(client)

    accounts = [f"u{n}" for n in range(BURST)]
    async with anyio.create_task_group() as tg:
        for account in accounts:
            tg.start_soon(one, account)
    try:
        assert statuses == dict.fromkeys(accounts, Status.SUCCESS)
        assert rig.gate.refused == 0
        stored = await rig.sessions.get_locations_many(TENANT, accounts)
        assert sorted(stored) == sorted(accounts)  # a Success has its location stored
    finally:
        for client in clients:
            client.close()


async def test_a_login_that_waits_past_the_patience_gets_unavailable(rig: Rig) -> None:
    rig.gate.patience = 0.05  # shorter than the hold below
    async with anyio.create_task_group() as hold:
        for _ in range(POOL - 2):  # every slot taken, as by long sign-ins
            hold.start_soon(_hold, rig.gate, anyio.Event())
        await until(lambda: rig.gate.waiting == 0 and _full(rig.gate))
        client, status = await rig.login("late")
        assert status == Status.UNAVAILABLE
        assert (await client.closed())[0] == CloseCode.TRY_AGAIN_LATER
        hold.cancel_scope.cancel()
    assert rig.gate.refused == 1
    assert await rig.sessions.get_locations(TENANT, "late") == []  # nothing stored
    client, status = await rig.login("later")  # slots free again: in at once
    assert status == Status.SUCCESS
    client.close()


async def _hold(gate: LoginGate, release: anyio.Event) -> None:
    async with gate.wait():
        await release.wait()


def _full(gate: LoginGate) -> bool:
    slots = gate._slots
    return slots is not None and slots.available_tokens == 0
