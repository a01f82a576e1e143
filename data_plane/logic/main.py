"""Wiring of a logic node: stores, handlers and the router, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from data_plane.cluster.protocol import LOCATION_TTL_SECONDS, REFRESH_COMMAND
from data_plane.cluster.tenants import TenantDirectory
from data_plane.logic.context import GatewayHub
from data_plane.logic.handlers.chat import ChatHandlers
from data_plane.logic.handlers.group import GroupHandlers
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.router import Handler, Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.logic.tenant_stores import TenantStores
from data_plane.metrics import serve_metrics
from data_plane.storage.messages_sql import open_message_store
from data_plane.storage.sessions import session_store_from_url
from data_plane.wire import Command


@asynccontextmanager
async def build_logic(settings: LogicSettings) -> AsyncIterator[LogicServer]:
    """Create the stores and handlers of a logic node; close the stores afterwards."""
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
            open_message_store(settings.database_url, node_id=settings.id_node) as shared,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(directory.run)
            stores = TenantStores(shared, directory, tg, node_id=settings.id_node)
            login = LoginHandlers(sessions, hub)
            chat = ChatHandlers(stores, sessions, hub)
            group = GroupHandlers(stores, sessions, hub)
            handlers: dict[str, Handler] = {
                REFRESH_COMMAND: login.refresh,
                Command.LOGIN_SIGNIN: login.signin,
                Command.LOGIN_SIGNOUT: login.signout,
                Command.CHAT_USER_TALK: chat.user_talk,
                Command.CHAT_TALK_ACK: chat.ack,
                Command.CHAT_OFFLINE_INDEX: chat.offline_index,
                Command.CHAT_OFFLINE_CONTENT: chat.offline_content,
                Command.CHAT_GROUP_CREATE: group.create,
                Command.CHAT_GROUP_JOIN: group.join,
                Command.CHAT_GROUP_QUIT: group.quit,
                Command.CHAT_GROUP_DETAIL: group.detail,
                Command.CHAT_GROUP_MEMBERS: group.members,
                Command.CHAT_GROUP_TALK: group.talk,
            }
            yield LogicServer(settings, Router(handlers), hub)
            tg.cancel_scope.cancel()
    finally:
        await directory.aclose()
        await sessions.aclose()


async def serve(settings: LogicSettings) -> None:
    """Run a logic node until cancelled."""
    serve_metrics("logic", settings.host, settings.metrics_port)
    async with build_logic(settings) as server:
        await server.run()
