"""The gateway's logic pool choosing by service, over real links to real logic servers.

Each logic server announces its services in its handshake answer; the pool must send a
command only to a node running its service, keep the account rule (rendezvous on
``tenant:account``) within those nodes, and call itself ready for logins only while a
login node is linked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import TaskStatus

from cirno.harness.ports import closed_port_url
from data_plane.cluster.grayscale import ClientFacts
from data_plane.cluster.registry import RegistryClient
from data_plane.cluster.selection import rendezvous_pick
from data_plane.cluster.services import ALL_SERVICES, Service
from data_plane.gateway.logic_link import LogicLink
from data_plane.gateway.logic_pool import LogicPool
from data_plane.gateway.settings import GatewaySettings
from data_plane.logic.context import GatewayHub
from data_plane.logic.router import Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.wire import Command

pytestmark = pytest.mark.anyio

SECRET = "pool-cluster-secret"
LOGIN_ONLY = frozenset({Service.LOGIN})
CHAT_FAMILY = frozenset({Service.CHAT, Service.GROUP, Service.SYNC})


def _dead_url() -> str:
    """A URL nothing listens on (the registry: the pool's links are static here)."""
    return closed_port_url()


@asynccontextmanager
async def cluster(
    services: list[frozenset[Service]],
) -> AsyncIterator[tuple[WatchedPool, list[anyio.CancelScope]]]:
    """Logic servers running ``services`` (one each, ids logic-1…), a pool linked to
    all of them, and a cancel scope per server to stop it."""
    async with anyio.create_task_group() as tg:
        servers: list[LogicServer] = []
        scopes: list[anyio.CancelScope] = []
        for index, offered in enumerate(services, start=1):
            node = LogicSettings(
                cluster_secret=SECRET, node_id=f"logic-{index}", port=0, services=offered
            )
            server = LogicServer(node, Router({}), GatewayHub())
            scope = anyio.CancelScope()
            scopes.append(scope)
            await tg.start(_serve, server, scope)
            servers.append(server)
        settings = GatewaySettings(
            cluster_secret=SECRET,
            gateway_id="gw-pool",
            control_url=_dead_url(),
            logic_addrs=tuple(("127.0.0.1", server.port) for server in servers),
            registry_poll_interval=60.0,
        )
        registry = RegistryClient(settings.control_url, SECRET)
        pool = WatchedPool(settings, registry)
        try:
            await tg.start(pool.run)
            await pool.until(lambda: all(link.ready for link in pool.links.values()))
            yield pool, scopes
        finally:
            tg.cancel_scope.cancel()
            await registry.aclose()


async def _serve(
    server: LogicServer, scope: anyio.CancelScope, *, task_status: TaskStatus[None]
) -> None:
    with scope:
        await server.run(task_status=task_status)


class WatchedPool(LogicPool):
    """A pool that tells when a link came up or went down."""

    def __init__(self, settings: GatewaySettings, registry: RegistryClient) -> None:
        super().__init__(settings, registry, lambda link, packet, raw: None)
        self.changed = anyio.Event()

    def _on_state(self, link: LogicLink | None) -> None:
        super()._on_state(link)
        self.changed.set()
        self.changed = anyio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition`` holds after the changes real sockets make."""
        with anyio.fail_after(10):
            while not condition():
                await self.changed.wait()


def _facts(account: str) -> ClientFacts:
    return ClientFacts(tenant="t", account=account, version=None, platform="", region="default")


async def test_each_service_goes_to_a_node_running_it_by_the_account_rule() -> None:
    async with cluster([LOGIN_ONLY, CHAT_FAMILY, CHAT_FAMILY, ALL_SERVICES]) as (pool, _):
        by_id = {link.node_id: link for link in pool.links.values()}
        assert {node: link.services for node, link in by_id.items()} == {
            "logic-1": LOGIN_ONLY,
            "logic-2": CHAT_FAMILY,
            "logic-3": CHAT_FAMILY,
            "logic-4": ALL_SERVICES,
        }
        login_nodes = ["logic-1", "logic-4"]
        chat_nodes = ["logic-2", "logic-3", "logic-4"]
        seen: dict[str, set[str]] = {"login": set(), "chat": set()}
        for number in range(64):
            account = f"user-{number}"
            key = f"t:{account}"
            routes = pool.routes(_facts(account))
            login = routes.link_for(Command.LOGIN_SIGNIN)
            assert login is not None and login.node_id == rendezvous_pick(login_nodes, key)
            assert routes.link_for(Command.LOGIN_SIGNOUT) is login
            chat = routes.link_for(Command.CHAT_USER_TALK)
            assert chat is not None and chat.node_id == rendezvous_pick(chat_nodes, key)
            for command in (Command.CHAT_GROUP_TALK, Command.CHAT_OFFLINE_INDEX):
                assert routes.link_for(command) is chat  # same nodes offer them: same pick
            anything = routes.link_for("weather.today")  # no service: any node answers it
            assert anything is not None and anything.node_id == rendezvous_pick(by_id, key)
            seen["login"].add(login.node_id)
            seen["chat"].add(chat.node_id)
        assert seen == {"login": set(login_nodes), "chat": set(chat_nodes)}


async def test_with_every_service_everywhere_an_account_stays_on_one_node() -> None:
    async with cluster([ALL_SERVICES, ALL_SERVICES, ALL_SERVICES]) as (pool, _):
        for number in range(32):
            routes = pool.routes(_facts(f"user-{number}"))
            picked = {routes.link_for(command) for command in Command}
            assert len(picked) == 1 and None not in picked


async def test_a_service_nobody_runs_gets_no_link_and_logins_wait_for_a_login_node() -> None:
    async with cluster([LOGIN_ONLY, CHAT_FAMILY]) as (pool, scopes):
        routes = pool.routes(_facts("alice"))
        assert pool.ready.is_set()
        login = routes.link_for(Command.LOGIN_SIGNIN)
        assert login is not None and login.node_id == "logic-1"
        scopes[0].cancel()  # the only login node goes away
        await pool.until(lambda: not login.ready)
        assert not pool.ready.is_set(), "no node can log anyone in: logins must wait"
        assert routes.link_for(Command.LOGIN_SIGNIN) is None
        chat = routes.link_for(Command.CHAT_USER_TALK)
        assert chat is not None and chat.node_id == "logic-2"
