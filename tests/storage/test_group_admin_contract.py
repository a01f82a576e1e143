"""Contract suite of the group-administration part of ``MessageStore`` (memory, SQLite,
MySQL): random ids, join policy, announcement, roles, mutes, ownership, dismissal and
join applications behave the same on every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from data_plane.storage.messages.factory import open_message_store
from data_plane.storage.messages.group_model import GroupChanges, JoinPolicy, Role
from data_plane.storage.messages.protocol import GroupNotFound, InvalidField, MessageStore
from tests.storage.test_message_contract import (  # noqa: F401 (fixtures used by name)
    BACKENDS,
    anyio_backend,
    database_url,
    mysql_tables,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageStore]:
    url = database_url(request.param, request, tmp_path)
    async with open_message_store(url, node_id=1) as opened:
        yield opened


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_group_ids_are_random_and_new_groups_invite_only(
    store: MessageStore, tenant: str
) -> None:
    ids = {(await store.create_group(tenant, "o", "g", "", "", [])).group_id for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 20 and not i.isdigit() for i in ids)  # 120 random bits, no snowflake
    group = await store.get_group(tenant, ids.pop())
    assert (group.join_policy, group.muted, group.announcement) == (JoinPolicy.INVITE, False, "")
    opened = await store.create_group(tenant, "o", "g", "", "", [], JoinPolicy.OPEN)
    assert (await store.get_group(tenant, opened.group_id)).join_policy == JoinPolicy.OPEN


async def test_access_tells_owner_admin_member_and_stranger(
    store: MessageStore, tenant: str
) -> None:
    gid = (await store.create_group(tenant, "o", "g", "", "", ["a", "m"])).group_id
    assert await store.set_member(tenant, gid, "a", role=Role.ADMIN)
    assert not await store.set_member(tenant, gid, "stranger", role=Role.ADMIN)
    owner, admin, member, stranger = [
        await store.group_access(tenant, gid, who) for who in ("o", "a", "m", "s")
    ]
    assert owner is not None and owner.manages("o") and owner.owner == "o"
    assert admin is not None and admin.manages("a") and admin.role == Role.ADMIN
    assert member is not None and member.member and not member.manages("m")
    assert stranger is not None and not stranger.member and not stranger.may_talk("s")
    assert await store.group_access(tenant, "missing", "o") is None
    members = {m.account: m for m in (await store.get_group(tenant, gid)).members}
    assert members["a"].role == Role.ADMIN and members["m"].role == Role.MEMBER


async def test_mutes_member_and_whole_group(store: MessageStore, tenant: str) -> None:
    gid = (await store.create_group(tenant, "o", "g", "", "", ["a", "m"])).group_id
    await store.set_member(tenant, gid, "a", role=Role.ADMIN)
    assert await store.set_member(tenant, gid, "m", muted=True)
    access = await store.group_access(tenant, gid, "m")
    assert access is not None and access.muted and not access.may_talk("m")
    await store.set_member(tenant, gid, "m", muted=False)
    await store.update_group(tenant, gid, GroupChanges(muted=True))
    for who, may in (("o", True), ("a", True), ("m", False)):
        access = await store.group_access(tenant, gid, who)
        assert access is not None and access.group_muted and access.may_talk(who) is may


async def test_update_transfer_and_dismiss(store: MessageStore, tenant: str) -> None:
    gid = (await store.create_group(tenant, "o", "g", "", "", ["a"])).group_id
    changes = GroupChanges(name="new", announcement="read me", join_policy=JoinPolicy.APPROVAL)
    updated = await store.update_group(tenant, gid, changes)
    assert (updated.name, updated.announcement, updated.join_policy) == (
        "new",
        "read me",
        JoinPolicy.APPROVAL,
    )
    with pytest.raises(InvalidField):
        await store.update_group(tenant, gid, GroupChanges(name=""))
    with pytest.raises(InvalidField):
        await store.update_group(tenant, gid, GroupChanges(announcement="x" * 1025))
    assert not await store.transfer_group(tenant, gid, "stranger")
    assert await store.transfer_group(tenant, gid, "a")
    assert (await store.get_group(tenant, gid)).owner == "a"
    assert sorted(await store.dismiss_group(tenant, gid)) == ["a", "o"]
    assert await store.group_access(tenant, gid, "a") is None
    with pytest.raises(GroupNotFound):
        await store.get_group(tenant, gid)
    with pytest.raises(GroupNotFound):
        await store.dismiss_group(tenant, gid)


async def test_applications_pending_until_taken_or_joined(store: MessageStore, tenant: str) -> None:
    gid = (await store.create_group(tenant, "o", "g", "", "", [])).group_id
    assert await store.add_application(tenant, gid, "x", "let me in")
    assert not await store.add_application(tenant, gid, "x", "again")
    assert await store.add_application(tenant, gid, "y", "")
    pending = await store.applications(tenant, gid)
    assert [(a.account, a.message) for a in pending] == [("x", "let me in"), ("y", "")]
    assert await store.take_application(tenant, gid, "x")
    assert not await store.take_application(tenant, gid, "x")
    await store.join_group(tenant, gid, "y")  # joining clears a pending application
    assert await store.applications(tenant, gid) == []
    with pytest.raises(GroupNotFound):
        await store.add_application(tenant, "missing", "x", "")
