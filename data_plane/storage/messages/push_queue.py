"""Push tokens and the queue of offline notifications (SQL).

Theory of operation:

- A device registers one token (``push_tokens``, keyed by tenant, account, device); a
  new token for the same device replaces the old one.
- When a stored message finds a receiver with no online device, the logic node queues
  one job per token of the receiver (``queue``), right after the session lookup that
  found nobody (see ``data_plane/logic/notify``). A job already pending for that token
  is not duplicated: its ``count`` goes up and it names the newest message, while its
  ``due_at`` (first message + the collapse window) stays: a burst becomes one
  notification with a count.
- A receiver who signs in cancels every pending job of the account (``cancel``).
- The push dispatcher takes due jobs (``due``), sends them, and ``finish``es each: a job
  that gained messages while it was being sent keeps only those (count reduced, due
  again after the window); otherwise it is deleted. Jobs are bounded: one per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.items import chunks
from data_plane.storage.messages.schema import EXTRA_LENGTH, push_jobs, push_tokens


@dataclass(frozen=True, slots=True)
class PushJob:
    """One pending notification for one token."""

    tenant: str
    account: str
    device: str
    token: str
    count: int
    sender: str
    group_id: str
    message_id: int
    preview: str
    due_at: int
    attempts: int


class PushQueue:
    """Tokens and jobs of one message database (see the module docstring)."""

    def __init__(self, pool: PooledConnections) -> None:
        self._pool = pool

    async def register(
        self, tenant: str, account: str, device: str, token: str, platform: str, now_ms: int
    ) -> None:
        """Store ``token`` as the device's push token (replacing an older one)."""

        async def work(conn: AsyncConnection) -> None:
            key = _device_key(tenant, account, device)
            await conn.execute(delete(push_tokens).where(*key))
            await conn.execute(
                insert(push_tokens).values(
                    tenant=tenant,
                    account=account,
                    device=device,
                    token=token,
                    platform=platform,
                    updated_at=now_ms,
                )
            )

        await self._pool.write(work)

    async def unregister(
        self, tenant: str, account: str, device: str, token: str | None = None
    ) -> bool:
        """Forget the device's token (only if it is ``token``, when given) and its
        pending job; whether a token was forgotten."""

        async def work(conn: AsyncConnection) -> bool:
            key = _device_key(tenant, account, device)
            only = (push_tokens.c.token == token,) if token else ()
            result = await conn.execute(delete(push_tokens).where(*key, *only))
            if result.rowcount > 0:
                await conn.execute(delete(push_jobs).where(*_job_key(tenant, account, device)))
            return result.rowcount > 0

        return await self._pool.write(work)

    async def tokens(self, tenant: str, account: str) -> list[tuple[str, str]]:
        """(device, token) of every registered device of the account."""

        async def work(conn: AsyncConnection) -> list[tuple[str, str]]:
            rows = await conn.execute(
                select(push_tokens.c.device, push_tokens.c.token)
                .where(push_tokens.c.tenant == tenant, push_tokens.c.account == account)
                .order_by(push_tokens.c.device)
            )
            return [(row.device, row.token) for row in rows]

        return await self._pool.read(work)

    async def queue(
        self,
        tenant: str,
        accounts: Sequence[str],
        *,
        sender: str,
        group_id: str,
        message_id: int,
        preview: str,
        now_ms: int,
        collapse_ms: int,
    ) -> int:
        """Queue (or collapse into) one job per token of ``accounts``; jobs touched."""
        preview = preview[: EXTRA_LENGTH // 4]

        async def work(conn: AsyncConnection) -> int:
            touched = 0
            for chunk in chunks(sorted(set(accounts))):
                tokens = (
                    await conn.execute(
                        select(push_tokens.c.account, push_tokens.c.device, push_tokens.c.token)
                        .where(push_tokens.c.tenant == tenant, push_tokens.c.account.in_(chunk))
                        .order_by(push_tokens.c.account, push_tokens.c.device)
                    )
                ).all()
                if not tokens:
                    continue
                keys = [(row.account, row.device) for row in tokens]
                pending = {
                    (row.account, row.device)
                    for row in await conn.execute(
                        select(push_jobs.c.account, push_jobs.c.device)
                        .where(
                            push_jobs.c.tenant == tenant,
                            tuple_(push_jobs.c.account, push_jobs.c.device).in_(keys),
                        )
                        .with_for_update()
                    )
                }
                for row in tokens:
                    if (row.account, row.device) in pending:
                        await conn.execute(
                            update(push_jobs)
                            .where(*_job_key(tenant, row.account, row.device))
                            .values(
                                count=push_jobs.c.count + 1,
                                sender=sender,
                                group_id=group_id,
                                message_id=message_id,
                                preview=preview,
                                token=row.token,
                            )
                        )
                    else:
                        await conn.execute(
                            insert(push_jobs).values(
                                tenant=tenant,
                                account=row.account,
                                device=row.device,
                                token=row.token,
                                count=1,
                                sender=sender,
                                group_id=group_id,
                                message_id=message_id,
                                preview=preview,
                                due_at=now_ms + collapse_ms,
                                attempts=0,
                            )
                        )
                    touched += 1
            return touched

        return await self._pool.write(work)

    async def cancel(self, tenant: str, account: str) -> int:
        """Drop every pending job of the account (it came online); how many."""

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                delete(push_jobs).where(
                    push_jobs.c.tenant == tenant, push_jobs.c.account == account
                )
            )
            return int(result.rowcount)

        return await self._pool.write(work)

    async def due(self, now_ms: int, limit: int) -> list[PushJob]:
        """Up to ``limit`` jobs due by ``now_ms``, oldest first."""

        async def work(conn: AsyncConnection) -> list[PushJob]:
            rows = await conn.execute(
                select(push_jobs)
                .where(push_jobs.c.due_at <= now_ms)
                .order_by(push_jobs.c.due_at)
                .limit(limit)
            )
            return [PushJob(*row) for row in rows]

        return await self._pool.read(work)

    async def finish(self, job: PushJob, now_ms: int, collapse_ms: int) -> None:
        """The job was sent: delete it, or keep what arrived while it was being sent."""

        async def work(conn: AsyncConnection) -> None:
            key = _job_key(job.tenant, job.account, job.device)
            await conn.execute(
                delete(push_jobs).where(*key, push_jobs.c.message_id == job.message_id)
            )
            await conn.execute(
                update(push_jobs)
                .where(*key, push_jobs.c.message_id != job.message_id)
                .values(count=push_jobs.c.count - job.count, due_at=now_ms + collapse_ms)
            )

        await self._pool.write(work)

    async def retry(self, job: PushJob, due_at: int) -> None:
        """The send failed: try again at ``due_at`` (one more attempt counted)."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                update(push_jobs)
                .where(*_job_key(job.tenant, job.account, job.device))
                .values(attempts=push_jobs.c.attempts + 1, due_at=due_at)
            )

        await self._pool.write(work)

    async def drop(self, job: PushJob) -> None:
        """Give the job up (its attempts are spent)."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(push_jobs).where(*_job_key(job.tenant, job.account, job.device))
            )

        await self._pool.write(work)


def _device_key(tenant: str, account: str, device: str) -> tuple[ColumnElement[bool], ...]:
    c = push_tokens.c
    return (c.tenant == tenant, c.account == account, c.device == device)


def _job_key(tenant: str, account: str, device: str) -> tuple[ColumnElement[bool], ...]:
    c = push_jobs.c
    return (c.tenant == tenant, c.account == account, c.device == device)
