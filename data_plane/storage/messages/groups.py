"""Groups in the SQL message store: create, join, quit, read.

Group changes run in write transactions on the engine's pool
(``engine.PooledConnections.write``). Joins and quits lock the group row first
(``SELECT … FOR UPDATE``): the send writer takes the same lock before it reads a group's
members, so a join or quit orders with the group's messages — a message stored before
a join never reaches the new member's inbox, and one stored after it always does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from data_plane.storage.ids import SnowflakeIds
from data_plane.storage.messages.engine import PooledConnections
from data_plane.storage.messages.group_model import JoinPolicy, Role
from data_plane.storage.messages.items import chunks
from data_plane.storage.messages.protocol import (
    Group,
    GroupNotFound,
    Member,
    check_group_fields,
    check_id,
    new_group_id,
    unique_members,
)
from data_plane.storage.messages.schema import chat_groups, group_applications, group_members


class Groups:
    """The group methods of ``store.SqlMessageStore``."""

    def __init__(self, pool: PooledConnections, ids: SnowflakeIds) -> None:
        self._pool = pool
        self._ids = ids

    async def create_group(
        self,
        tenant: str,
        owner: str,
        name: str,
        avatar: str,
        introduction: str,
        members: Sequence[str],
        join_policy: JoinPolicy = JoinPolicy.INVITE,
    ) -> Group:
        """See ``MessageStore.create_group``."""
        check_id("tenant", tenant)
        check_id("owner", owner)
        check_group_fields(name, avatar, introduction)
        accounts = unique_members(owner, members)
        group_id, created_at = new_group_id(), self._ids.now_ms()
        member_list = sorted(
            (Member(a, "", "", created_at) for a in accounts), key=lambda m: m.account
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                chat_groups.insert().values(
                    tenant=tenant,
                    group_id=group_id,
                    name=name,
                    avatar=avatar,
                    introduction=introduction,
                    owner=owner,
                    created_at=created_at,
                    seq=0,
                    join_policy=int(join_policy),
                )
            )
            rows = [_member_row(tenant, group_id, m) for m in member_list]
            await self._insert_rows(conn, group_members, rows)

        await self._pool.write(work)
        return Group(
            group_id,
            name,
            avatar,
            introduction,
            owner,
            created_at,
            member_list,
            join_policy=JoinPolicy(join_policy),
        )

    @staticmethod
    async def lock_group(conn: AsyncConnection, tenant: str, group_id: str) -> None:
        """Lock the group's row for the transaction. Raises ``GroupNotFound``."""
        found = await conn.scalar(
            select(chat_groups.c.seq)
            .where(chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id)
            .with_for_update()
        )
        if found is None:
            raise GroupNotFound(f"group {group_id!r} does not exist")

    async def join_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.join_group``."""
        check_id("account", account)

        async def work(conn: AsyncConnection) -> bool:
            # The group row lock orders joins with the group's messages.
            await self.lock_group(conn, tenant, group_id)
            if await self._member_exists(conn, tenant, group_id, account):
                return False
            member = Member(account, "", "", self._ids.now_ms())
            await conn.execute(group_members.insert(), [_member_row(tenant, group_id, member)])
            await conn.execute(
                group_applications.delete().where(
                    group_applications.c.tenant == tenant,
                    group_applications.c.group_id == group_id,
                    group_applications.c.account == account,
                )
            )
            return True

        return await self._pool.write(work)

    async def quit_group(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.quit_group``."""

        async def work(conn: AsyncConnection) -> bool:
            await self.lock_group(conn, tenant, group_id)
            result = await conn.execute(
                group_members.delete().where(
                    group_members.c.tenant == tenant,
                    group_members.c.group_id == group_id,
                    group_members.c.account == account,
                )
            )
            return result.rowcount > 0

        return await self._pool.write(work)

    async def get_group(self, tenant: str, group_id: str) -> Group:
        """See ``MessageStore.get_group``."""
        return await self._pool.read(lambda conn: self.read_group(conn, tenant, group_id))

    async def read_group(self, conn: AsyncConnection, tenant: str, group_id: str) -> Group:
        """The group on ``conn`` (inside a caller's transaction). Raises ``GroupNotFound``."""
        row = (
            await conn.execute(
                select(
                    chat_groups.c.name,
                    chat_groups.c.avatar,
                    chat_groups.c.introduction,
                    chat_groups.c.owner,
                    chat_groups.c.created_at,
                    chat_groups.c.announcement,
                    chat_groups.c.join_policy,
                    chat_groups.c.muted,
                ).where(chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id)
            )
        ).first()
        if row is None:
            raise GroupNotFound(f"group {group_id!r} does not exist")
        name, avatar, introduction, owner, created_at, announcement, policy, muted = row
        members = await self._members(conn, tenant, group_id)
        return Group(
            group_id,
            name,
            avatar,
            introduction,
            owner,
            created_at,
            members,
            announcement=announcement,
            join_policy=JoinPolicy(policy),
            muted=bool(muted),
        )

    async def members(self, tenant: str, group_id: str) -> list[Member]:
        """See ``MessageStore.members``."""

        async def work(conn: AsyncConnection) -> list[Member]:
            exists = await conn.scalar(
                select(chat_groups.c.seq).where(
                    chat_groups.c.tenant == tenant, chat_groups.c.group_id == group_id
                )
            )
            if exists is None:
                raise GroupNotFound(f"group {group_id!r} does not exist")
            return await self._members(conn, tenant, group_id)

        return await self._pool.read(work)

    async def is_member(self, tenant: str, group_id: str, account: str) -> bool:
        """See ``MessageStore.is_member``."""

        async def work(conn: AsyncConnection) -> bool:
            return await self._member_exists(conn, tenant, group_id, account)

        return await self._pool.read(work)

    @staticmethod
    async def _members(conn: AsyncConnection, tenant: str, group_id: str) -> list[Member]:
        rows = await conn.execute(
            select(
                group_members.c.account,
                group_members.c.alias,
                group_members.c.avatar,
                group_members.c.join_time,
                group_members.c.role,
                group_members.c.muted,
            )
            .where(group_members.c.tenant == tenant, group_members.c.group_id == group_id)
            .order_by(group_members.c.join_time, group_members.c.account)
        )
        return [
            Member(a, alias, avatar, joined, Role(role), bool(muted))
            for a, alias, avatar, joined, role, muted in rows
        ]

    @staticmethod
    async def _member_exists(
        conn: AsyncConnection, tenant: str, group_id: str, account: str
    ) -> bool:
        found = await conn.scalar(
            select(group_members.c.join_time).where(
                group_members.c.tenant == tenant,
                group_members.c.group_id == group_id,
                group_members.c.account == account,
            )
        )
        return found is not None

    @staticmethod
    async def _insert_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
        for chunk in chunks(rows, 1000):
            await conn.execute(table.insert(), list(chunk))


def _member_row(tenant: str, group_id: str, member: Member) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "group_id": group_id,
        "account": member.account,
        "alias": member.alias,
        "avatar": member.avatar,
        "join_time": member.join_time,
    }
