"""``chat.typing``: a typing indicator, forwarded and forgotten.

A ``TypingReq`` names a 1:1 peer or a group. The logic node forwards a
``TypingNotify`` (command ``chat.typing``) to the conversation's online members — the
peer's devices, or every online member of the group but the sender — and stores
nothing. Rules, each with its status:

- exactly one of ``peer`` and ``group``, and a valid account name: InvalidPacketBody (101);
- a group the sender is not a member of: Forbidden (403); an unknown group: NotFound (410);
- a group of more than :data:`MAX_TYPING_GROUP` members: TooLarge (413), nothing
  forwarded (a typing line means little in a crowd, and the fan-out would cost a
  presence lookup of every member per keystroke burst);
- more than one indicator per :data:`TYPING_INTERVAL` seconds per connection and
  conversation: RateLimited (429), nothing forwarded — the client is told, so it can
  slow down, and its next indicator after the interval goes through.

The rate limiter is in the memory of the logic node (a connection's ``chat.`` commands
reach one node while the cluster's membership holds still) and bounded to
:data:`MAX_TRACKED` (connection, conversation) pairs; when full, the oldest entries are
forgotten, which can only let an indicator through early, never refuse one late.

Delivery is at most once, best effort, over the unsequenced push path
(:func:`~data_plane.logic.handlers.presence.push_unsequenced`): typing pushes are not
inbox rows and carry no inbox sequence.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from data_plane.cluster.identity import is_account
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.presence import push_unsequenced
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.protocol import LocationsUnavailable, SessionStore
from data_plane.wire import Command, LogicPacket, Status, pb

log = logging.getLogger(__name__)

TYPING_INTERVAL = 2.0
"""Seconds between two forwarded indicators of one connection in one conversation."""

MAX_TYPING_GROUP = 500
"""Groups larger than this get no typing indicators (TooLarge)."""

MAX_TRACKED = 100_000
"""(connection, conversation) pairs the rate limiter remembers."""


class TypingLimiter:
    """At most one indicator per ``interval`` per key; bounded to ``max_tracked`` keys."""

    def __init__(
        self,
        interval: float = TYPING_INTERVAL,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._max = max_tracked
        self._clock = clock
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()

    def allow(self, key: tuple[str, str]) -> bool:
        """Whether an indicator for ``key`` may go now (and if so, remember it)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
        return True


class TypingHandlers:
    """``chat.typing``."""

    def __init__(
        self,
        stores: TenantStores,
        sessions: SessionStore,
        hub: GatewayHub,
        limiter: TypingLimiter | None = None,
    ) -> None:
        self._stores = stores
        self._sessions = sessions
        self._hub = hub
        self._limiter = limiter or TypingLimiter()

    async def typing(self, request: Request) -> None:
        """Check, rate-limit, answer, then forward to the conversation's online members."""
        req = request.packet.parse_body(pb.TypingReq)
        if bool(req.peer) == bool(req.group):
            request.fail(Status.INVALID_PACKET_BODY, "name exactly one of peer and group")
            return
        if req.peer and not is_account(req.peer):
            request.fail(Status.INVALID_PACKET_BODY, f"not an account name: {req.peer!r}")
            return
        conversation = f"g:{req.group}" if req.group else f"u:{req.peer}"
        if not self._limiter.allow((request.channel_id, conversation)):
            request.fail(
                Status.RATE_LIMITED,
                f"at most one typing indicator per {TYPING_INTERVAL:g} s per conversation",
            )
            return
        if req.group:
            accounts = await self._group_audience(request, req.group)
            if accounts is None:
                return
        else:
            accounts = [req.peer]
        request.reply()
        notify = pb.TypingNotify(account=request.account, group=req.group, stopped=req.stopped)
        packet = LogicPacket.make_push(Command.CHAT_TYPING, notify, dest=req.group or req.peer)
        try:
            found = await self._sessions.get_locations_many(request.tenant, accounts)
        except LocationsUnavailable as exc:  # some masters failed: tell the others
            found = exc.found
        except SessionStoreUnavailable as exc:
            log.info("typing indicator not forwarded: %s", exc)
            return
        targets = [
            (location.gateway_id, location.channel_id)
            for account, locations in found.items()
            if account != request.account  # not to the sender's own devices
            for location in locations
        ]
        if targets:
            push_unsequenced(self._hub, targets, packet)

    async def _group_audience(self, request: Request, group_id: str) -> list[str] | None:
        """The members to tell; None (after answering) when the sender may not."""
        store = await self._stores.get(request.tenant)
        members = await store.members(request.tenant, group_id)  # unknown: NotFound
        accounts = [member.account for member in members]
        if request.account not in accounts:
            request.fail(Status.FORBIDDEN, f"{request.account} is not a member of {group_id}")
            return None
        if len(accounts) > MAX_TYPING_GROUP:
            request.fail(
                Status.TOO_LARGE,
                f"no typing indicators in groups of more than {MAX_TYPING_GROUP} members",
            )
            return None
        return [account for account in accounts if account != request.account]
