"""``push.register`` and ``push.unregister``: a device's push token.

The token is kept per (tenant, account, device) in the tenant's message database
(``storage.messages.push_queue``); the device is the one the connection signed in
with. While the account has no online device, its messages are notified through the
tenant's push provider (``logic.notify``). Needs the SQL message store: on the
in-memory one the commands answer NotImplemented.
"""

from __future__ import annotations

import time

from data_plane.logic.context import Request
from data_plane.logic.notify.offline import OfflineNotifier
from data_plane.wire import Status, pb

MAX_TOKEN_LENGTH = 512
PLATFORMS = frozenset({"android", "ios", "web", "other"})


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be stored, or None (1-512 printable ASCII, no spaces)."""
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        return f"token must be 1-{MAX_TOKEN_LENGTH} characters"
    if not all("\x21" <= ch <= "\x7e" for ch in token):
        return "token must be printable ASCII without spaces"
    return None


class PushHandlers:
    """The ``push.*`` commands over the tenant's push queue."""

    def __init__(self, notifier: OfflineNotifier) -> None:
        self._notifier = notifier

    async def register(self, request: Request) -> None:
        """Store this device's token (replacing an older one); answer Success."""
        req = request.packet.parse_body(pb.PushRegisterReq)
        problem = token_problem(req.token)
        platform = req.platform or "other"
        if problem is None and platform not in PLATFORMS:
            problem = f"platform must be one of {', '.join(sorted(PLATFORMS))}"
        if problem is not None:
            request.fail(Status.INVALID_PACKET_BODY, problem)
            return
        queue = await self._notifier.queue_of(request.tenant)
        if queue is None:
            request.fail(Status.NOT_IMPLEMENTED, "push tokens need the SQL message store")
            return
        now_ms = int(time.time() * 1000)
        await queue.register(
            request.tenant, request.account, request.device, req.token, platform, now_ms
        )
        request.reply()

    async def unregister(self, request: Request) -> None:
        """Forget this device's token (only if it is the body's ``token``, when set) and
        its pending notification; answer Success."""
        req = request.packet.parse_body(pb.PushUnregisterReq)
        queue = await self._notifier.queue_of(request.tenant)
        if queue is None:
            request.fail(Status.NOT_IMPLEMENTED, "push tokens need the SQL message store")
            return
        await queue.unregister(request.tenant, request.account, request.device, req.token or None)
        request.reply()
