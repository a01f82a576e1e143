"""Group administration in the SQL message store: access, updates, roles and mutes,
ownership, dismissal and join applications.

Every change runs in one write transaction on the engine's pool that first locks the
group row (``Groups.lock_group``), the lock group sends and joins take too, so changes
to one group apply in one order. Talk permission (membership, mutes) is read by the
handler with ``group_access`` before the send, not inside the send's transaction: a talk
that races a mute by milliseconds may still be stored, as if sent just before it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.group_model import (
    Access,
    Application,
    GroupChanges,
    JoinPolicy,
    Role,
)
from data_plane.storage.messages.groups import Groups
from data_plane.storage.messages.protocol import (
    Group,
    GroupNotFound,
    check_application,
    check_changes,
    check_id,
)
from data_plane.storage.messages.schema import chat_groups, group_applications, group_members


def _group_key(tenant: str, group_id: str) -> Any:
    return and_(chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id)


def _member_key(tenant: str, group_id: str, account: str) -> Any:
    return and_(
        group_members.c.tenant == tenant,
        group_members.c.group_id == group_id,
        group_members.c.account == account,
    )


def _application_key(tenant: str, group_id: str) -> Any:
    return and_(group_applications.c.tenant == tenant, group_applications.c.group_id == group_id)


class GroupAdmin:
    """The group-administration methods of ``store.SqlMessageStore``."""

    def __init__(self, pool: PooledConnections, ids: SnowflakeIds, groups: Groups) -> None:
        self._pool = pool
        self._ids = ids
        self._groups = groups

    async def group_access(self, tenant: str, group_id: str, account: str) -> Access | None:
        """See ``MessageStore.group_access`` (one query: the group row, outer-joined with
        the account's member row)."""
        joined = chat_groups.outerjoin(
            group_members,
            and_(
                group_members.c.tenant == chat_groups.c.tenant,
                group_members.c.group_id == chat_groups.c.group_id,
                group_members.c.account == account,
            ),
        )
        statement = select(
            chat_groups.c.owner,
            chat_groups.c.join_policy,
            chat_groups.c.muted,
            group_members.c.join_time,
            group_members.c.role,
            group_members.c.muted,
        ).select_from(joined)

        async def work(conn: AsyncConnection) -> Access | None:
            row = (await conn.execute(statement.where(_group_key(tenant, group_id)))).first()
            if row is None:
                return None
            owner, policy, group_muted, joined_at, role, muted = row
            member = joined_at is not None
            return Access(
                owner=owner,
                join_policy=JoinPolicy(policy),
                group_muted=bool(group_muted),
                member=member,
                role=Role(role) if member else Role.MEMBER,
                muted=member and bool(muted),
            )

        return await self._pool.read(work)

    async def update_group(self, tenant: str, group_id: str, changes: GroupChanges) -> Group:
        """See ``MessageStore.update_group``."""
        check_changes(changes)
        values: dict[str, Any] = {}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.announcement is not None:
            values["announcement"] = changes.announcement
        if changes.join_policy is not None:
            values["join_policy"] = int(changes.join_policy)
        if changes.muted is not None:
            values["muted"] = int(changes.muted)

        async def work(conn: AsyncConnection) -> Group:
            await self._groups.lock_group(conn, tenant, group_id)
            if values:
                await conn.execute(
                    update(chat_groups).where(_group_key(tenant, group_id)).values(**values)
                )
            return await self._groups.read_group(conn, tenant, group_id)

        return await self._pool.write(work)

    async def set_member(
        self,
        tenant: str,
        group_id: str,
        account: str,
        *,
        role: Role | None = None,
        muted: bool | None = None,
    ) -> bool:
        """See ``MessageStore.set_member``."""
        values: dict[str, Any] = {}
        if role is not None:
            values["role"] = int(role)
        if muted is not None:
            values["muted"] = int(muted)

        async def work(conn: AsyncConnection) -> bool:
            await self._groups.lock_group(conn, tenant, group_id)
            found = await conn.scalar(
                select(group_members.c.join_time).where(_member_key(tenant, group_id, account))
            )
            if found is None:
                return False
            if values:
                await conn.execute(
                    update(group_members)
                    .where(_member_key(tenant, group_id, account))
                    .values(**values)
                )
            return True

        return await self._pool.write(work)

    async def transfer_group(self, tenant: str, group_id: str, new_owner: str) -> bool:
        """See ``MessageStore.transfer_group``."""

        async def work(conn: AsyncConnection) -> bool:
            await self._groups.lock_group(conn, tenant, group_id)
            found = await conn.scalar(
                select(group_members.c.join_time).where(_member_key(tenant, group_id, new_owner))
            )
            if found is None:
                return False
            await conn.execute(
                update(chat_groups).where(_group_key(tenant, group_id)).values(owner=new_owner)
            )
            await conn.execute(
                update(group_members)
                .where(_member_key(tenant, group_id, new_owner))
                .values(role=int(Role.MEMBER))
            )
            return True

        return await self._pool.write(work)

    async def dismiss_group(self, tenant: str, group_id: str) -> list[str]:
        """See ``MessageStore.dismiss_group``."""

        async def work(conn: AsyncConnection) -> list[str]:
            await self._groups.lock_group(conn, tenant, group_id)
            rows = await conn.execute(
                select(group_members.c.account)
                .where(group_members.c.tenant == tenant, group_members.c.group_id == group_id)
                .order_by(group_members.c.join_time, group_members.c.account)
            )
            accounts = [account for (account,) in rows]
            await conn.execute(
                delete(group_members).where(
                    group_members.c.tenant == tenant, group_members.c.group_id == group_id
                )
            )
            await conn.execute(delete(group_applications).where(_application_key(tenant, group_id)))
            await conn.execute(delete(chat_groups).where(_group_key(tenant, group_id)))
            return accounts

        return await self._pool.write(work)

    async def add_application(self, tenant: str, group_id: str, account: str, message: str) -> bool:
        """See ``MessageStore.add_application``."""
        check_id("account", account)
        check_application(message)

        async def work(conn: AsyncConnection) -> bool:
            await self._groups.lock_group(conn, tenant, group_id)
            found = await conn.scalar(
                select(group_applications.c.applied_at).where(
                    _application_key(tenant, group_id), group_applications.c.account == account
                )
            )
            if found is not None:
                return False
            await conn.execute(
                group_applications.insert().values(
                    tenant=tenant,
                    group_id=group_id,
                    account=account,
                    message=message,
                    applied_at=self._ids.now_ms(),
                )
            )
            return True

        return await self._pool.write(work)

    async def applications(self, tenant: str, group_id: str) -> list[Application]:
        """See ``MessageStore.applications``."""

        async def work(conn: AsyncConnection) -> list[Application]:
            exists = await conn.scalar(
                select(chat_groups.c.seq).where(_group_key(tenant, group_id))
            )
            if exists is None:
                raise GroupNotFound(f"group {group_id!r} does not exist")
            rows = await conn.execute(
                select(
                    group_applications.c.account,
                    group_applications.c.message,
                    group_applications.c.applied_at,
                )
                .where(_application_key(tenant, group_id))
                .order_by(group_applications.c.applied_at, group_applications.c.account)
            )
            return [Application(a, message, at) for a, message, at in rows]

        return await self._pool.read(work)

    async def take_application(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.take_application``."""

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                delete(group_applications).where(
                    _application_key(tenant, group_id), group_applications.c.account == account
                )
            )
            return result.rowcount > 0

        return await self._pool.write(work)
