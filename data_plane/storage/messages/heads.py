"""Inbox heads, read for many concurrent callers in one round trip.

Every login reads its account's inbox head (``MessageStore.inbox_heads``), so a burst
of logins is a burst of one-row reads. Each read on the engine's pool took a pooled
connection for several event-loop turns (a pre-ping, the statement, its rows); on a
busy loop the pool's throughput fell below the login rate, the waiting queue grew
without bound, and asyncio's pool queue is not fair (a caller woken for a connection
that a newcomer took first goes to the back): at 400-1,200 logins in flight on MySQL
some waited more than 10 s and their logins failed upstream.

So reads are coalesced like the writes (:mod:`.group_commit`): callers queue
(tenant, accounts) without awaiting first, and one reader task takes everything
queued, reads it on one pooled connection (one statement per tenant and chunk of
accounts) and hands each caller its own heads; requests that queue meanwhile form the
next batch. Under load one round trip serves hundreds of logins; a lone read costs one
round trip as before (no linger).

Guarantees:

- **A read starts after it was queued.** A batch is taken when its round trip starts,
  so every head a caller gets was read after its call: what a login relies on (the
  location is stored before the head is read; docs/design.md, "Delivery promise").
- **FIFO**: callers are served in the order they queued, at most ``max_batch`` per
  round trip; nobody is overtaken.
- **Failures**: a round trip that fails answers each of its callers
  ``MessageStoreUnavailable``; a caller cancelled while waiting only stops waiting.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.group_commit import GroupCommitter
from data_plane.storage.messages.items import chunks
from data_plane.storage.messages.schema import inbox_seq

HeadRequest = tuple[str, tuple[str, ...]]
"""(tenant, distinct accounts) of one caller."""

MAX_BATCH = 256
"""Callers per round trip."""


class HeadReads:
    """Coalesced ``inbox_heads`` on ``pool``; :meth:`run` must be running while used."""

    def __init__(self, pool: PooledConnections, *, max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self._queue: GroupCommitter[HeadRequest, dict[str, int]] = GroupCommitter(
            self._flush, linger_s=0, max_batch=max_batch
        )

    @property
    def round_trips(self) -> int:
        """Batches read so far (for tests)."""
        return self._queue.flushes

    async def read(self, tenant: str, accounts: Sequence[str]) -> dict[str, int]:
        """See ``MessageStore.inbox_heads``: each account's head, read after this call."""
        wanted = tuple(dict.fromkeys(accounts))
        if not wanted:
            return {}
        self._pool.check_open()
        return await self._queue.submit((tenant, wanted))

    async def run(self) -> None:
        """The reader loop; returns after :meth:`close` once the queue is drained."""
        await self._queue.run()

    def close(self) -> None:
        """Refuse new reads; what is queued is still read."""
        self._queue.close()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` returned."""
        await self._queue.wait_stopped()

    async def _flush(self, requests: Sequence[HeadRequest]) -> list[dict[str, int]]:
        by_tenant: dict[str, dict[str, None]] = {}
        for tenant, accounts in requests:
            by_tenant.setdefault(tenant, {}).update(dict.fromkeys(accounts))

        async def work(conn: AsyncConnection) -> dict[tuple[str, str], int]:
            heads: dict[tuple[str, str], int] = {}
            for tenant, accounts in by_tenant.items():
                for chunk in chunks(list(accounts)):
                    rows = await conn.execute(
                        select(inbox_seq.c.account, inbox_seq.c.seq).where(
                            inbox_seq.c.tenant == tenant, inbox_seq.c.account.in_(chunk)
                        )
                    )
                    for account, seq in rows:
                        heads[tenant, account] = int(seq)
            return heads

        found = await self._pool.read(work)
        return [
            {account: found.get((tenant, account), 0) for account in accounts}
            for tenant, accounts in requests
        ]
