"""``presence.subscribe`` and ``presence.unsubscribe``, and the presence pushes.

A connection follows accounts of its own tenant (at most
:data:`MAX_WATCHES_PER_CONNECTION`; a request beyond answers TooLarge 413 and adds
nothing). The answer to a subscribe gives each account's state now. After that the
connection gets a ``PresenceNotify`` push (command ``presence.subscribe``) when a
followed account comes online (its first device logs in) or goes offline (its last
device logs out, disconnects, or is removed): :class:`Presence` settles the account in
the session store after every sign-in and sign-out (:mod:`.login` calls it), and the
one caller that sees the change pushes to the account's watchers. Watches live in the
shared session store, so the follower and the followed account may be on different
logic nodes and gateways.

Guarantees:

- **At most once.** A push is best effort: it is not stored, not retried, and lost
  when the follower's gateway link is down at that moment. The answer to a subscribe
  is the truth at that time; clients re-subscribe after reconnecting (the SDK does).
- **No false changes.** Each change of an account is announced once (the session
  store's settle is atomic), so a second device logging in or out pushes nothing.
- **Eventually consistent within one store round trip** of the sign-in or sign-out
  that caused the change, on every logic node, while the session store answers.
- **A connection's watches end with it**: its sign-out (the gateway sends one on every
  disconnect, kickout included) drops them; if that is missed (a crashed gateway) they
  expire :data:`WATCH_TTL_MS` after the last location refresh of the connection.
- **While the session store is down** subscribe and unsubscribe answer SystemException
  (300); logins and logouts still succeed, and their presence changes are not pushed.
  The next sign-in or sign-out of such an account settles it again, so a missed change
  is announced late (e.g. "offline" when its devices are gone) rather than never.
  A store that loses its data (a Redis restart without persistence) loses the watches:
  the gateways' refreshes bring locations back, but watches only a new subscribe.
- **A gateway that dies** sends no sign-outs; its channels' locations expire
  (``LOCATION_TTL_SECONDS`` after the last refresh) and :mod:`.presence_sweep` settles
  their accounts on the logic node that saw them last, so followers hear "offline"
  within about ``SWEEP_AFTER`` + one refresh interval (about 4 minutes). If that logic
  node dies too, the announcement waits for the account's next login or logout;
  followers that need the truth re-subscribe (the answer carries the state).

Presence pushes are **not inbox rows**: they go through :func:`push_unsequenced`,
never through the sequenced inbox push path, and carry no inbox sequence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from data_plane.cluster.identity import is_account
from data_plane.cluster.protocol import LOCATION_TTL_SECONDS, META_CHANNELS
from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.presence_sweep import ExpirySweep
from data_plane.storage.errors import StorageError
from data_plane.storage.sessions.presence import Watcher, WatchLimitExceeded
from data_plane.storage.sessions.protocol import SessionStore
from data_plane.wire import Command, LogicPacket, Meta, Status, pb

log = logging.getLogger(__name__)

MAX_WATCHES_PER_CONNECTION = 200
"""Accounts one connection may follow at once (and name in one request)."""

WATCH_TTL_MS = LOCATION_TTL_SECONDS * 1000
"""A watch lives this long after the connection's last subscribe or location refresh."""

PRESENCE_PUSH = Command.PRESENCE_SUBSCRIBE
"""The command of a ``PresenceNotify`` push."""


def push_unsequenced(
    hub: GatewayHub, targets: Iterable[tuple[str, str]], packet: LogicPacket
) -> int:
    """Push ``packet`` to (gateway id, channel id) ``targets``, one packet per gateway.

    The **unsequenced** push path: for pushes that are not inbox rows (presence,
    typing). They carry no inbox sequence, are never stored, and a client must not
    count them in its inbox order. Returns how many channels were on a connected
    gateway (best effort: a full or closed link drops them).
    """
    by_gateway: dict[str, list[str]] = {}
    for gateway_id, channel_id in targets:
        by_gateway.setdefault(gateway_id, []).append(channel_id)
    reached = 0
    for gateway_id, channels in by_gateway.items():
        addressed = packet.replace(meta=(Meta(META_CHANNELS, ",".join(channels)),))
        if hub.send(gateway_id, addressed.encode()):
            reached += len(channels)
    return reached


def _accounts_of(request: Request) -> list[str] | None:
    """The request's accounts, deduplicated; None (after answering) when invalid."""
    req = request.packet.parse_body(pb.PresenceSubscribeReq)
    accounts = list(dict.fromkeys(req.accounts))
    if not accounts:
        request.fail(Status.INVALID_PACKET_BODY, "name at least one account")
        return None
    if len(accounts) > MAX_WATCHES_PER_CONNECTION:
        request.fail(Status.TOO_LARGE, f"at most {MAX_WATCHES_PER_CONNECTION} accounts per request")
        return None
    bad = next((a for a in accounts if not is_account(a)), None)
    if bad is not None:
        request.fail(Status.INVALID_PACKET_BODY, f"not an account name: {bad!r}")
        return None
    return accounts


class Presence:
    """The presence commands, and the settling that :mod:`.login` triggers."""

    def __init__(
        self,
        sessions: SessionStore,
        hub: GatewayHub,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` gives wall-clock seconds (watch deadlines, ``PresenceNotify.at``)."""
        self._sessions = sessions
        self._hub = hub
        self._clock = clock
        self.sweep = ExpirySweep(self.settle)
        """Channels seen here, for offline announcements after a gateway died."""

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def subscribe(self, request: Request) -> None:
        """Follow the accounts; answer their states and the connection's watch count."""
        accounts = _accounts_of(request)
        if accounts is None:
            return
        watcher = Watcher(request.channel_id, request.gateway_id)
        try:
            count = await self._sessions.watch(
                request.tenant,
                watcher,
                accounts,
                limit=MAX_WATCHES_PER_CONNECTION,
                now_ms=self._now_ms(),
                ttl_ms=WATCH_TTL_MS,
            )
        except WatchLimitExceeded as exc:
            request.fail(Status.TOO_LARGE, str(exc))
            return
        online = await self._sessions.get_locations_many(request.tenant, accounts)
        states = [pb.PresenceState(account=a, online=a in online) for a in accounts]
        request.reply(body=pb.PresenceSubscribeResp(states=states, subscriptions=count))

    async def unsubscribe(self, request: Request) -> None:
        """Stop following the accounts; answer the connection's watch count."""
        accounts = _accounts_of(request)
        if accounts is None:
            return
        count = await self._sessions.unwatch(
            request.tenant, request.channel_id, accounts, now_ms=self._now_ms()
        )
        request.reply(body=pb.PresenceSubscribeResp(subscriptions=count))

    async def settle(self, tenant: str, account: str) -> None:
        """Settle the account's presence and push a change to its watchers. Never
        raises on a failing store (logged): logins and logouts do not depend on it."""
        try:
            now_ms = self._now_ms()
            changed, watchers = await self._sessions.settle_presence_with_watchers(
                tenant, account, now_ms=now_ms
            )
            if changed is None:
                return
        except StorageError as exc:
            log.warning("presence of %s/%s not settled: %s", tenant, account, exc)
            return
        if watchers:
            notify = pb.PresenceNotify(account=account, online=changed, at=now_ms)
            packet = LogicPacket.make_push(PRESENCE_PUSH, notify, dest=account)
            push_unsequenced(self._hub, ((w.gateway_id, w.channel_id) for w in watchers), packet)

    async def signed_in(self, request: Request) -> None:
        """A connection logged in: remember it for the sweep, settle its account."""
        self.sweep.seen(request.tenant, request.account, request.channel_id)
        await self.settle(request.tenant, request.account)

    async def connection_left(self, request: Request) -> None:
        """Drop the leaving connection's watches, then settle its account."""
        self.sweep.gone(request.tenant, request.channel_id)
        try:
            await self._sessions.unwatch_all(request.tenant, request.channel_id)
        except StorageError as exc:
            log.warning("watches of %s not dropped (they expire): %s", request.channel_id, exc)
        await self.settle(request.tenant, request.account)

    async def refresh(self, request: Request) -> None:
        """Extend the live connection's watches (with its location refresh)."""
        self.sweep.seen(request.tenant, request.account, request.channel_id)
        watcher = Watcher(request.channel_id, request.gateway_id)
        try:
            await self._sessions.refresh_watches(
                request.tenant, watcher, now_ms=self._now_ms(), ttl_ms=WATCH_TTL_MS
            )
        except StorageError as exc:
            log.warning("watches of %s not refreshed: %s", request.channel_id, exc)
