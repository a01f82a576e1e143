"""How many sign-ins, sign-outs and location refreshes of this node run at once.

Each of them makes a few session-store round trips (the location, presence) and a
login reads its inbox head. Unbounded, a burst of logins (hundreds of new connections
at once) became hundreds of concurrent store calls: the Redis session store's pool of
``max_connections`` ran dry, a call waits at most ``socket_timeout`` for a free
connection (and that wait is not first come, first served), and logins failed with
"No connection available" — or, with the reads queued on the database pool instead,
waited there past the gateway's ``logic_request_timeout``.

So they pass a :class:`LoginGate`: at most ``limit`` run at once, the others wait in
one first-come-first-served queue (``anyio.CapacityLimiter`` hands a freed slot to the
oldest waiter). Under a burst logins get slower, not refused, and the stores see a
bounded load. A sign-in that cannot start within ``patience`` is answered
Unavailable (503, "try again later") before the gateway's own deadline: a clear,
retryable status, never a timeout, and nothing was stored for it. Sign-outs and
refreshes wait as long as it takes (a location must not outlive its connection), in
two queues of their own so a burst of refreshes (every channel of a gateway at once)
never delays a login.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from data_plane.logic.refusal import Refused
from data_plane.wire import Status

DEFAULT_LIMIT = 64
"""Sign-ins and sign-outs running at once: with the refreshes' :data:`REFRESH_LIMIT`,
below the Redis store's default pool of 100 connections."""
REFRESH_LIMIT = 16
"""Location refreshes running at once."""
DEFAULT_PATIENCE = 5.0
"""Seconds a sign-in may wait for a slot: half the gateway's ``logic_request_timeout``
(10 s), so the refusal reaches the client before the gateway gives up on the answer."""


class LoginGate:
    """A first-come-first-served queue in front of ``limit`` slots (0 = no limit)."""

    def __init__(self, limit: int = DEFAULT_LIMIT, patience: float = DEFAULT_PATIENCE) -> None:
        if limit < 0 or patience <= 0:
            raise ValueError("limit must not be negative and patience must be positive")
        self._slots = anyio.CapacityLimiter(limit) if limit else None
        self.patience = patience
        """Seconds a sign-in may wait for a slot."""
        self.refused = 0
        """Sign-ins refused for want of a slot (for tests and curiosity)."""

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        return self._slots.statistics().tasks_waiting if self._slots else 0

    @asynccontextmanager
    async def signin(self) -> AsyncIterator[None]:
        """Hold a slot for the body; raises :class:`Refused` (Unavailable) when none
        came free within ``patience``."""
        slots = self._slots
        if slots is None:
            yield
            return
        # A slot handed over just as the deadline passes is given back by ``acquire``
        # (it raises): cancelled_caught means no slot is held.
        with anyio.move_on_after(self.patience) as waited:
            await slots.acquire()
        if waited.cancelled_caught:
            self.refused += 1
            raise Refused(Status.UNAVAILABLE, "too many logins in progress: try again later")
        try:
            yield
        finally:
            slots.release()

    @asynccontextmanager
    async def wait(self) -> AsyncIterator[None]:
        """Hold a slot for the body, however long it takes to get one."""
        slots = self._slots
        if slots is None:
            yield
            return
        async with slots:
            yield
