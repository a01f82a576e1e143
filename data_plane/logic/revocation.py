"""The logic node's half of revocation: refuse the requests of revoked users.

Gateways close a revoked user's connections when *they* learn of the change; a logic
node polls the same tenant directory on its own schedule, so whichever learns first
stops the user. Every handler but sign-out and the location refresh is wrapped: a
request from a user of a disabled tenant or a banned account (the rule of
:mod:`data_plane.cluster.revocation`) is answered Forbidden (403) with the reason, and
nothing is stored or pushed; a login of a disabled tenant's user is answered
Unauthorized (105), as the gateway answers it. A tenant this node does not know yet is
let through: the gateway verified the login, and the handlers that need the tenant
refuse an unknown one themselves.

Bound: a request is refused from this node's first directory refresh after the change
(``tenant_refresh_interval``, 1 s by default), whatever the gateway knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from data_plane.cluster.protocol import REFRESH_COMMAND
from data_plane.cluster.revocation import refusal
from data_plane.cluster.tenants import TenantDirectory
from data_plane.logic.context import Request
from data_plane.logic.router import Handler
from data_plane.wire import Command, Status

UNGUARDED = frozenset({str(Command.LOGIN_SIGNOUT), REFRESH_COMMAND})
"""Leaving is always allowed; a refresh only re-asserts a location the gateway holds."""


def guard_handlers(
    handlers: Mapping[str, Handler],
    directory: TenantDirectory,
    wall_clock: Callable[[], float] = time.time,
) -> dict[str, Handler]:
    """``handlers`` with every command but :data:`UNGUARDED` refusing revoked users."""

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> None:
            info = directory.cached(request.tenant)
            if info is not None:
                refused = refusal(info, request.account, wall_clock())
                if refused is not None:
                    request.fail(_status(request, info.active), refused)
                    return
            await handler(request)

        return run

    return {
        command: handler if command in UNGUARDED else guarded(handler)
        for command, handler in handlers.items()
    }


def _status(request: Request, tenant_active: bool) -> Status:
    """Forbidden (403), except a login of a disabled tenant's user: Unauthorized (105),
    as the gateway answers it, whichever of the two learns of the change first."""
    if not tenant_active and request.packet.command == Command.LOGIN_SIGNIN:
        return Status.UNAUTHORIZED
    return Status.FORBIDDEN
