"""Pushes of stored messages: looked up, addressed, sent, and kept when they cannot go.

A message is acknowledged to its sender once committed; its pushes follow. A push that
cannot go out now is never dropped silently:

- **session store failing**: the whole push (its accounts and packets) is kept and its
  lookup retried every ``retry_interval``; when only some accounts could not be read (a
  failing Redis Cluster master fails only the accounts in its slots), the others are
  pushed at once and only the unreadable accounts' part is kept;
- **gateway not linked** (this node restarted and that gateway has not dialled it yet)
  **or its link buffer full**: the addressed packet is kept for that gateway, in order,
  and sent as soon as the gateway links (:meth:`Pusher.gateway_linked`) or the retry
  loop finds room; while packets wait for a gateway, newer ones for it queue behind
  them, so one gateway's pushes leave in the order they were made.

Both are bounded: a push is given up ``hold`` seconds after it was made, and at most
``max_pending`` pushes wait at a time (a push beyond that is given up at once). Every
give-up is logged with its count and counted in ``cirno_logic_pushes_given_up_total``.
A push given up is not a lost message: the gateway's sequencer notices the missing
inbox row (a later push, or its periodic head check) and has it pushed again from the
store (docs/design.md, "Delivery promise").
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import anyio

from data_plane.logic.context import GatewayHub
from data_plane.metrics import PUSHES_DEFERRED, PUSHES_GIVEN_UP, PUSHES_PENDING
from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.protocol import Location, LocationsUnavailable, SessionStore
from data_plane.wire import LogicPacket

log = logging.getLogger(__name__)

HOLD_SECONDS = 30.0
MAX_PENDING = 10_000
RETRY_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class PushPart:
    """One packet for some accounts' devices; ``seqs`` is the stored message's inbox
    sequence by account (None for a push with no inbox row, e.g. a group notify)."""

    accounts: Sequence[str]
    packet: LogicPacket
    seqs: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class _Lookup:
    """A push whose locations are not known yet (the session store failed)."""

    tenant: str
    exclude_channel: str
    parts: tuple[PushPart, ...]
    deadline: float


class Pusher:
    """Sends pushes and keeps, within bounds, those that cannot go out now."""

    def __init__(
        self,
        sessions: SessionStore,
        hub: GatewayHub,
        *,
        hold: float = HOLD_SECONDS,
        max_pending: int = MAX_PENDING,
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._hold = hold
        self._max_pending = max_pending
        self._retry_interval = retry_interval
        self._clock = clock
        self._lookups: deque[_Lookup] = deque()
        self._sends: dict[str, deque[tuple[float, bytes]]] = {}
        self._pending = 0
        self._refused = 0
        """Pushes given up at once since the last retry round (logged there, once)."""
        self._store_down = False
        """The last lookup failed as a whole: new pushes queue behind the held ones rather
        than wait on the store each (a partial failure lets them try)."""
        self._wake = anyio.Event()
        hub.on_attach = self.gateway_linked

    @property
    def pending(self) -> int:
        """Pushes waiting (lookups and addressed packets)."""
        return self._pending

    async def push(self, tenant: str, exclude_channel: str, parts: Sequence[PushPart]) -> None:
        """Push every part to its accounts' devices except ``exclude_channel`` (the
        requesting connection); one session lookup for all. Never raises for a failing
        store or link: the push is kept and retried."""
        job = _Lookup(tenant, exclude_channel, tuple(parts), self._clock() + self._hold)
        if self._lookups and self._store_down:  # failing a moment ago: wait in line
            self._keep_lookup(job)
            return
        try:
            rest = await self._deliver(job)
        except SessionStoreUnavailable as exc:
            log.warning("push held, session store unavailable: %s", exc)
            self._keep_lookup(job)
            return
        if rest is not None:
            self._keep_lookup(rest)

    async def _deliver(self, job: _Lookup) -> _Lookup | None:
        """Look the accounts up and send each part. Returns the part of ``job`` whose
        accounts could not be read (None: all sent); raises SessionStoreUnavailable when
        none could."""
        accounts = list(dict.fromkeys(a for part in job.parts for a in part.accounts))
        try:
            found = await self._sessions.get_locations_many(job.tenant, accounts)
        except LocationsUnavailable as exc:
            if not exc.found:
                self._store_down = True
                raise
            self._store_down = False
            missing = set(exc.unavailable)
            log.warning("push partly held, %d accounts unreadable: %s", len(missing), exc)
            self._send_parts(job, exc.found)
            parts = tuple(
                PushPart([a for a in part.accounts if a in missing], part.packet, part.seqs)
                for part in job.parts
                if any(a in missing for a in part.accounts)
            )
            return _Lookup(job.tenant, job.exclude_channel, parts, job.deadline)
        except SessionStoreUnavailable:
            self._store_down = True
            raise
        self._store_down = False
        self._send_parts(job, found)
        return None

    def _send_parts(self, job: _Lookup, found: Mapping[str, Sequence[Location]]) -> None:
        for part in job.parts:
            targets: list[Location] = [
                location
                for account in part.accounts
                for location in found.get(account, ())
                if location.channel_id != job.exclude_channel
            ]
            if targets:
                for gateway_id, data in self._hub.address(targets, part.packet, part.seqs):
                    self._send(gateway_id, data, job.deadline)

    def _send(self, gateway_id: str, data: bytes, deadline: float) -> None:
        waiting = self._sends.get(gateway_id)
        if waiting is None and self._hub.send(gateway_id, data):
            return
        if not self._admit("gateway_link"):
            return
        if waiting is None:
            state = "not linked" if not self._hub.linked(gateway_id) else "link full"
            log.warning("pushes held for gateway %s: %s", gateway_id, state)
            waiting = self._sends[gateway_id] = deque()
        waiting.append((deadline, data))
        self._wake.set()

    def _keep_lookup(self, job: _Lookup) -> None:
        if self._admit("session_store"):
            self._lookups.append(job)
            self._wake.set()

    def _admit(self, reason: str) -> bool:
        """Count one more waiting push; False (given up, logged) when full."""
        if self._pending >= self._max_pending:
            PUSHES_GIVEN_UP.labels("full").inc()
            self._refused += 1
            return False
        self._pending += 1
        PUSHES_DEFERRED.labels(reason).inc()
        PUSHES_PENDING.set(self._pending)
        return True

    def _done(self, count: int) -> None:
        self._pending -= count
        PUSHES_PENDING.set(self._pending)

    def gateway_linked(self, gateway_id: str) -> None:
        """Send what waits for ``gateway_id`` (its link was just registered)."""
        self._flush(gateway_id, self._clock())

    def _flush(self, gateway_id: str, now: float) -> None:
        waiting = self._sends.get(gateway_id)
        if waiting is None:
            return
        expired = sent = 0
        while waiting:
            deadline, data = waiting[0]
            if deadline < now:
                expired += 1
            elif self._hub.send(gateway_id, data):
                sent += 1
            else:
                break
            waiting.popleft()
        if not waiting:
            del self._sends[gateway_id]
        self._done(expired + sent)
        if sent:
            log.info("sent %d held pushes to gateway %s", sent, gateway_id)
        if expired:
            PUSHES_GIVEN_UP.labels("gateway_link").inc(expired)
            log.error(
                "gave up %d pushes to gateway %s: not linked or full for %.0f s",
                expired,
                gateway_id,
                self._hold,
            )

    async def _retry_lookups(self, now: float) -> None:
        """Each held lookup once, in order; a part still unreadable goes to the back."""
        expired = 0
        for _ in range(len(self._lookups)):
            job = self._lookups[0]
            if job.deadline < now:
                expired += 1
                self._lookups.popleft()
                self._done(1)
                continue
            try:
                rest = await self._deliver(job)
            except SessionStoreUnavailable:
                break  # still failing as a whole: the rest wait for the next round
            self._lookups.popleft()
            if rest is None:
                self._done(1)
            else:
                self._lookups.append(rest)
        if expired:
            PUSHES_GIVEN_UP.labels("session_store").inc(expired)
            log.error("gave up %d pushes: the session store failed for %.0f s", expired, self._hold)

    async def retry_once(self) -> None:
        """One retry round: held lookups in order, then held packets per gateway."""
        now = self._clock()
        if self._refused:
            log.error(
                "gave up %d pushes at once: %d pushes already waited, the limit",
                self._refused,
                self._max_pending,
            )
            self._refused = 0
        await self._retry_lookups(now)
        for gateway_id in list(self._sends):
            self._flush(gateway_id, now)

    async def run(self) -> NoReturn:
        """Retry what waits every ``retry_interval`` while anything does (cancel to stop)."""
        while True:
            if not self._pending:
                await self._wake.wait()
                self._wake = anyio.Event()
            await anyio.sleep(self._retry_interval)
            await self.retry_once()
