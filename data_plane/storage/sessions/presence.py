"""Presence in the session store: who is online, and which connections follow whom.

Theory of operation. An account is *online* while it has at least one location. The
store keeps, beside each account's locations, a one-bit *announced state*: the state
last reported to the account's followers. :meth:`PresenceStore.settle_presence`
compares the two in one atomic step and flips the bit when they differ, so every
change from offline to online (the first device) and back (the last device gone) is
reported to exactly one caller, however many logins and logouts race on however many
logic nodes, and a second device coming or going reports nothing.

A *watch* is one connection (a :class:`Watcher`: its channel on its gateway) following
one account of its tenant. Watches are stored twice, by follower (to count them
against the per-connection limit and to drop them when the connection goes) and by
followed account (to find whom to push to), in the session store every logic node
shares, so a follower on one logic node hears of a login handled by another. Every
watch carries a deadline (``now_ms + ttl_ms`` when it was made or last refreshed):
past it, it is gone for every method, and it is deleted when next read, so watches of
a connection whose removal was missed (a crashed gateway) cost memory for at most
``ttl_ms`` after their last refresh. Time is the caller's (``now_ms`` arguments), so
the expiry is the same on every backend and tests need not sleep.

The two copies of a watch are written one after the other, not atomically (on Redis
Cluster they live in different slots): a failure between them can leave a watch in
the follower's list but not under the account (no push, until the next refresh
repairs it) or the reverse (a push to a channel that gateway no longer has, which it
drops), never an unbounded one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Watcher:
    """A connection that follows accounts: the channel a push goes to, on its gateway."""

    channel_id: str
    gateway_id: str


class WatchLimitExceeded(Exception):
    """A watch would take a connection over its limit; nothing was added.

    ``current`` is how many live watches the connection has.
    """

    def __init__(self, current: int, limit: int) -> None:
        super().__init__(f"a connection follows at most {limit} accounts (it follows {current})")
        self.current = current
        self.limit = limit


class PresenceStore(Protocol):
    """Announced presence states and watches, per tenant (see the module docstring).

    Every method raises ``SessionStoreUnavailable`` when the backend is unreachable, as
    the rest of the session store does. Tenants are isolated: a watcher only ever
    follows, and is only ever found under, accounts of the tenant it was stored with.
    """

    async def settle_presence(self, tenant: str, account: str) -> bool | None:
        """Compare the account's state (has it a location?) with the announced one and,
        if they differ, make the announced state the real one — atomically.

        Returns True when the account just came online, False when it just went
        offline, None when nothing changed. Each change is returned to exactly one
        caller. An account offline and never announced costs no memory.
        """
        ...

    async def settle_presence_with_watchers(
        self, tenant: str, account: str, *, now_ms: int
    ) -> tuple[bool | None, list[Watcher]]:
        """:meth:`settle_presence`, and when it returns a change, the account's live
        :meth:`watchers` (as of ``now_ms``) read in the same step; ``[]`` when nothing
        changed. One round trip on Redis where the two calls took two."""
        ...

    async def watch(
        self,
        tenant: str,
        watcher: Watcher,
        accounts: Sequence[str],
        *,
        limit: int,
        now_ms: int,
        ttl_ms: int,
    ) -> int:
        """Make ``watcher`` follow ``accounts`` until ``now_ms + ttl_ms``.

        Idempotent: an account already followed has its deadline moved. Raises
        :class:`WatchLimitExceeded` and adds nothing when the watcher's live watches
        plus the new ones would exceed ``limit``. Returns the watcher's live watches
        afterwards.
        """
        ...

    async def unwatch(
        self, tenant: str, channel_id: str, accounts: Sequence[str], *, now_ms: int
    ) -> int:
        """Stop the channel following ``accounts`` (unknown ones are ignored); returns
        its live watches afterwards."""
        ...

    async def unwatch_all(self, tenant: str, channel_id: str) -> int:
        """Drop every watch of the channel (it disconnected); returns how many it had."""
        ...

    async def refresh_watches(
        self, tenant: str, watcher: Watcher, *, now_ms: int, ttl_ms: int
    ) -> int:
        """Move the deadline of every live watch of the watcher to ``now_ms + ttl_ms``
        (and rewrite both copies, repairing a half-written watch); returns how many."""
        ...

    async def watchers(self, tenant: str, account: str, *, now_ms: int) -> list[Watcher]:
        """The live watchers of the account, sorted by channel id (expired ones are
        deleted on the way)."""
        ...
