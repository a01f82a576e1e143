"""Wiring of a logic node: stores, handlers and the router, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

from data_plane.cluster.outbound import OutboundDirectory
from data_plane.cluster.protocol import (
    FILL_COMMAND,
    HEADS_COMMAND,
    LOCATION_TTL_SECONDS,
    REFRESH_COMMAND,
)
from data_plane.cluster.registry import RegistryClient
from data_plane.cluster.services import Service, format_services
from data_plane.cluster.tenants import TenantDirectory
from data_plane.logic.context import GatewayHub
from data_plane.logic.handlers.chat import ChatHandlers
from data_plane.logic.handlers.conversations import ConversationHandlers
from data_plane.logic.handlers.group import GroupHandlers
from data_plane.logic.handlers.group_admin import GroupAdminHandlers
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.handlers.login_gate import LoginGate
from data_plane.logic.handlers.presence import Presence
from data_plane.logic.handlers.push import PushHandlers
from data_plane.logic.handlers.recall import RecallHandlers
from data_plane.logic.handlers.sync import SyncHandlers
from data_plane.logic.handlers.typing import TypingHandlers
from data_plane.logic.lease import NodeMembership
from data_plane.logic.moderation.gate import ModerationGate
from data_plane.logic.moderation.hook import HookClient
from data_plane.logic.notify.dispatcher import PushDispatcher
from data_plane.logic.notify.offline import OfflineNotifier
from data_plane.logic.outbound_hooks import LiveOutboundHooks
from data_plane.logic.outbound_settings import OutboundSettings
from data_plane.logic.pushes import Pusher
from data_plane.logic.revocation import guard_handlers
from data_plane.logic.router import Handler, Router
from data_plane.logic.server import LogicServer
from data_plane.logic.server_api import ServerApiHandlers
from data_plane.logic.settings import LogicSettings
from data_plane.logic.tenant_stores import TenantStores
from data_plane.logic.webhooks.dispatcher import WebhookDispatcher, holder_id
from data_plane.logic.webhooks.events import EventRecorder
from data_plane.metrics import serve_metrics
from data_plane.storage.messages.factory import open_message_store
from data_plane.storage.messages.outbox import OutboxWriter
from data_plane.storage.messages.protocol import MessageStore
from data_plane.storage.messages.store import SqlMessageStore
from data_plane.storage.sessions.factory import session_store_from_url
from data_plane.storage.sessions.protocol import SessionStore
from data_plane.wire import Command


def handlers_by_service(
    login: LoginHandlers,
    chat: ChatHandlers,
    group: GroupHandlers,
    sync: SyncHandlers,
    presence: Presence,
    typing: TypingHandlers,
    conversations: ConversationHandlers,
    recalls: RecallHandlers,
    push: PushHandlers | None = None,
) -> dict[Service, dict[str, Handler]]:
    """Every command's handler, grouped by the service it belongs to (the grouping is
    :func:`service_of`'s; ``tests/logic`` checks that the two agree). Without ``push``
    (rigs on the in-memory store) the ``push.*`` commands answer NotImplemented."""
    login_table: dict[str, Handler] = {
        REFRESH_COMMAND: login.refresh,
        Command.LOGIN_SIGNIN: login.signin,
        Command.LOGIN_SIGNOUT: login.signout,
    }
    if push is not None:
        login_table[Command.PUSH_REGISTER] = push.register
        login_table[Command.PUSH_UNREGISTER] = push.unregister
    login_table[Command.PRESENCE_SUBSCRIBE] = presence.subscribe
    login_table[Command.PRESENCE_UNSUBSCRIBE] = presence.unsubscribe
    return {
        Service.LOGIN: login_table,
        Service.CHAT: {
            Command.CHAT_USER_TALK: chat.user_talk,
            Command.CHAT_TALK_ACK: chat.ack,
            Command.CHAT_TYPING: typing.typing,
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
            **_administration(group.admin),
        },
        Service.SYNC: {
            Command.CHAT_OFFLINE_INDEX: sync.index,
            Command.CHAT_OFFLINE_CONTENT: sync.content,
            FILL_COMMAND: sync.fill,
            HEADS_COMMAND: sync.heads,
        },
    }


def _administration(admin: GroupAdminHandlers) -> dict[str, Handler]:
    """The group-administration commands (cirno extensions of the ``group`` service)."""
    return {
        Command.CHAT_GROUP_DISMISS: admin.dismiss,
        Command.CHAT_GROUP_TRANSFER: admin.transfer,
        Command.CHAT_GROUP_UPDATE: admin.update,
        Command.CHAT_GROUP_ADMIN: admin.admin,
        Command.CHAT_GROUP_MUTE: admin.mute,
        Command.CHAT_GROUP_APPLY: admin.apply,
        Command.CHAT_GROUP_APPROVE: admin.approve,
        Command.CHAT_GROUP_APPLICATIONS: admin.applications,
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


def start_outbound(
    settings: LogicSettings,
    stores: TenantStores,
    sessions: SessionStore,
    outbound: OutboundDirectory,
    tg: TaskGroup,
) -> None:
    """Webhooks and push notifications: the outbox writer on every SQL store (written in
    the send transaction), the directory of endpoints and providers, and the two
    dispatchers (``CIRNO_WEBHOOK_*`` / ``CIRNO_PUSH_*`` settings)."""

    def attach(store: MessageStore) -> None:
        if isinstance(store, SqlMessageStore):
            store.send_writes.outbox = OutboxWriter(outbound.wants)

    def sql_stores() -> list[SqlMessageStore]:
        return [s for s in stores.opened() if isinstance(s, SqlMessageStore)]

    for store in stores.opened():
        attach(store)
    stores.on_open = attach
    tunables = OutboundSettings.from_env()
    holder = holder_id(settings.node_id)
    tg.start_soon(outbound.run)
    tg.start_soon(WebhookDispatcher(sql_stores, outbound, tunables, holder).run)
    tg.start_soon(PushDispatcher(sql_stores, outbound, tunables, holder, sessions).run)


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
    outbound = OutboundDirectory(
        settings.control_url,
        settings.cluster_secret,
        refresh_interval=settings.tenant_refresh_interval,
    )
    hub = GatewayHub()
    hook_client = HookClient(
        concurrency=settings.moderation_concurrency,
        max_answer_bytes=settings.moderation_max_answer_bytes,
    )
    try:
        async with (
            open_message_store(settings.database_url, node_id=id_node) as shared,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(directory.run)
            presence = Presence(sessions, hub)
            tg.start_soon(presence.sweep.run)
            stores = TenantStores(
                shared, directory, tg, node_id=id_node, check_writable=check_writable
            )
            pusher = Pusher(sessions, hub)
            tg.start_soon(pusher.run)
            notifier = OfflineNotifier(stores, outbound, sessions)
            hooks = LiveOutboundHooks(EventRecorder(stores, outbound), notifier)
            moderation = ModerationGate(directory, stores, hook_client)
            start_outbound(settings, stores, sessions, outbound, tg)
            chat = ChatHandlers(stores, pusher, hooks, moderation)
            group = GroupHandlers(stores, pusher, hooks, moderation)
            by_service = handlers_by_service(
                LoginHandlers(
                    sessions,
                    hub,
                    stores,
                    presence,
                    hooks=hooks,
                    gate=LoginGate(settings.max_logins_running, settings.login_patience),
                ),
                chat,
                group,
                SyncHandlers(stores),
                presence,
                TypingHandlers(stores, sessions, hub),
                ConversationHandlers(stores, sessions, hub),
                RecallHandlers(
                    stores,
                    sessions,
                    hub,
                    recall_window_s=settings.recall_window_s,
                    tenant_window_s=lambda tenant: recall_window_of(directory, tenant),
                ),
                PushHandlers(notifier),
            )
            handlers, not_served = split_by_services(by_service, settings)
            # Every node serves the server API (its control-plane link picks any node).
            server_api = ServerApiHandlers(
                stores,
                sessions,
                hub,
                chat,
                group,
                max_packet_size=settings.max_packet_size,
                hooks=hooks,
            )
            handlers.update(server_api.table())
            handlers = guard_handlers(handlers, directory)  # revoked users are refused
            yield LogicServer(settings, Router(handlers, not_served), hub)
            tg.cancel_scope.cancel()
    finally:
        await hook_client.aclose()
        await outbound.aclose()
        await directory.aclose()
        await sessions.aclose()


def recall_window_of(directory: TenantDirectory, tenant: str) -> float | None:
    """The tenant's own recall window as the directory last heard of it, or None."""
    info = directory.cached(tenant)
    return info.recall_window_s if info is not None else None


async def serve(settings: LogicSettings) -> None:
    """Run a logic node until cancelled: lease a node number, serve, heartbeat.

    Raises ValueError first when the settings cannot work together (see
    :meth:`LogicSettings.check`)."""
    settings.check()
    registry = RegistryClient(settings.control_url, settings.cluster_secret)
    membership = NodeMembership(settings, registry)
    listening = False

    def unmet() -> list[str]:
        """What keeps this node from being ready (``/readyz``)."""
        reasons = [] if listening else ["not listening for gateway links yet"]
        if not membership.registered:
            reasons.append("not registered with the control plane")
        return reasons

    serve_metrics("logic", settings.host, settings.metrics_port, unmet)
    try:
        id_node = await membership.acquire()
        async with (
            build_logic(
                settings, id_node=id_node, check_writable=membership.check_writable
            ) as server,
            anyio.create_task_group() as tg,
        ):
            await tg.start(server.run)
            listening = True
            membership.link_port = server.port
            tg.start_soon(membership.run)
    finally:
        await registry.aclose()
