"""Wiring of a logic node: stores, handlers and the router, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from data_plane.logic.context import GatewayHub
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.router import Handler, Router
from data_plane.logic.server import LogicServer
from data_plane.logic.settings import LogicSettings
from data_plane.storage.sessions import session_store_from_url
from data_plane.wire import Command


@asynccontextmanager
async def build_logic(settings: LogicSettings) -> AsyncIterator[LogicServer]:
    """Create the stores and handlers of a logic node; close the stores afterwards."""
    sessions = session_store_from_url(settings.session_url)
    hub = GatewayHub()
    login = LoginHandlers(sessions, hub)
    handlers: dict[Command, Handler] = {
        Command.LOGIN_SIGNIN: login.signin,
        Command.LOGIN_SIGNOUT: login.signout,
    }
    try:
        yield LogicServer(settings, Router(handlers), hub)
    finally:
        await sessions.aclose()


async def serve(settings: LogicSettings) -> None:
    """Run a logic node until cancelled."""
    async with build_logic(settings) as server:
        await server.run()
