"""Wiring of a logic node: stores, handlers and the router, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

from data_plane.cluster.protocol import LOCATION_TTL_SECONDS, REFRESH_COMMAND
from data_plane.cluster.registry import RegistryClient
from data_plane.cluster.services import Service, format_services
from data_plane.cluster.tenants import TenantDirectory
from data_plane.logic.context import GatewayHub
from data_plane.logic.handlers.chat import ChatHandlers
from data_plane.logic.handlers.conversations import ConversationHandlers
from data_plane.logic.handlers.group import GroupHandlers
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.handlers.recall import RecallHandlers
from data_plane.logic.handlers.sync import SyncHandlers
from data_plane.logic.lease import NodeMembership
from data_plane.logic.router import Handler, Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.logic.tenant_stores import TenantStores
from data_plane.metrics import serve_metrics
from data_plane.storage.messages.factory import open_message_store
from data_plane.storage.sessions.factory import session_store_from_url
from data_plane.wire import Command


def handlers_by_service(
    login: LoginHandlers,
    chat: ChatHandlers,
    group: GroupHandlers,
    sync: SyncHandlers,
    conversations: ConversationHandlers,
    recalls: RecallHandlers,
) -> dict[Service, dict[str, Handler]]:
    """Every command's handler, grouped by the service it belongs to (the grouping is
    :func:`service_of`'s; ``tests/logic`` checks that the two agree)."""
    return {
        Service.LOGIN: {
            REFRESH_COMMAND: login.refresh,
            Command.LOGIN_SIGNIN: login.signin,
            Command.LOGIN_SIGNOUT: login.signout,
        },
        Service.CHAT: {
            Command.CHAT_USER_TALK: chat.user_talk,
            Command.CHAT_TALK_ACK: chat.ack,
            Command.CHAT_CONVERSATION_LIST: conversations.list,
            Command.CHAT_HISTORY: conversations.history,
            Command.CHAT_READ: conversations.read,
            Command.CHAT_READ_COUNT: conversations.read_count,
            Command.CHAT_RECALL: recalls.recall,
            Command.CHAT_DELETE: recalls.delete,
        },
        Service.GROUP: {
            Command.CHAT_GROUP_CREATE: group.create,
            Command.CHAT_GROUP_JOIN: group.join,
            Command.CHAT_GROUP_QUIT: group.quit,
            Command.CHAT_GROUP_DETAIL: group.detail,
            Command.CHAT_GROUP_MEMBERS: group.members,
            Command.CHAT_GROUP_TALK: group.talk,
        },
        Service.SYNC: {
            Command.CHAT_OFFLINE_INDEX: sync.index,
            Command.CHAT_OFFLINE_CONTENT: sync.content,
        },
    }


def split_by_services(
    by_service: dict[Service, dict[str, Handler]], settings: LogicSettings
) -> tuple[dict[str, Handler], dict[str, str]]:
    """The handlers of the services ``settings`` runs, and for every other command the
    reason this node refuses it."""
    handlers: dict[str, Handler] = {}
    not_served: dict[str, str] = {}
    runs = format_services(settings.services)
    for service, table in by_service.items():
        if service in settings.services:
            handlers.update(table)
            continue
        for command in table:
            not_served[command] = (
                f"{command} is served by the {service} service, which logic node "
                f"{settings.node_id} does not run (it runs {runs})"
            )
    return handlers, not_served


@asynccontextmanager
async def build_logic(
    settings: LogicSettings, *, id_node: int, check_writable: Callable[[], None] = lambda: None
) -> AsyncIterator[LogicServer]:
    """Create the stores and handlers of a logic node; close the stores afterwards.

    ``id_node`` is the message-id node number; ``check_writable`` raises while this node
    may not create messages (its node-number lease lapsed).
    """
    sessions = session_store_from_url(
        settings.session_url,
        prefix=settings.session_prefix,
        location_ttl_s=LOCATION_TTL_SECONDS,
    )
    directory = TenantDirectory(
        settings.control_url,
        settings.cluster_secret,
        refresh_interval=settings.tenant_refresh_interval,
    )
    hub = GatewayHub()
    try:
        async with (
            open_message_store(settings.database_url, node_id=id_node) as shared,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(directory.run)
            stores = TenantStores(
                shared, directory, tg, node_id=id_node, check_writable=check_writable
            )
            by_service = handlers_by_service(
                LoginHandlers(sessions, hub),
                ChatHandlers(stores, sessions, hub),
                GroupHandlers(stores, sessions, hub),
                SyncHandlers(stores),
                ConversationHandlers(stores, sessions, hub),
                RecallHandlers(stores, sessions, hub, recall_window_s=settings.recall_window_s),
            )
            handlers, not_served = split_by_services(by_service, settings)
            yield LogicServer(settings, Router(handlers, not_served), hub)
            tg.cancel_scope.cancel()
    finally:
        await directory.aclose()
        await sessions.aclose()


async def serve(settings: LogicSettings) -> None:
    """Run a logic node until cancelled: lease a node number, serve, heartbeat.

    Raises ValueError first when the settings cannot work together (see
    :meth:`LogicSettings.check`)."""
    settings.check()
    serve_metrics("logic", settings.host, settings.metrics_port)
    registry = RegistryClient(settings.control_url, settings.cluster_secret)
    membership = NodeMembership(settings, registry)
    try:
        id_node = await membership.acquire()
        async with (
            build_logic(
                settings, id_node=id_node, check_writable=membership.check_writable
            ) as server,
            anyio.create_task_group() as tg,
        ):
            await tg.start(server.run)
            membership.link_port = server.port
            tg.start_soon(membership.run)
    finally:
        await registry.aclose()
