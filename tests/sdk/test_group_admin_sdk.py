"""Group administration through the SDK (``Client.groups``) and ``cirno chat``'s
commands, against a real cluster: the calls succeed for the right role, refuse with the
server's status otherwise, and the notifies arrive as ``GroupEvent``s."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest

from cirno.chat import run
from cirno.harness import Cluster
from cirno_sdk import Client, GroupEvent, JoinPolicy, RequestRefused, SendRefused
from data_plane.wire import Status
from tests.sdk.conftest import tcp_url
from tests.sdk.test_client_e2e import client, name

pytestmark = pytest.mark.anyio


async def group_event(c: Client, kind: str, timeout: float = 10.0) -> GroupEvent:
    """The next ``GroupEvent`` of ``kind`` (others are skipped)."""
    async with asyncio.timeout(timeout):
        async for event in c.events():
            if isinstance(event, GroupEvent) and event.kind == kind:
                return event
    raise AssertionError(f"events ended before a {kind!r} group event")


async def test_sdk_group_administration(cluster: Cluster) -> None:
    owner, admin, member, applicant = name("own"), name("adm"), name("mem"), name("app")
    async with (
        client(cluster.ws_url, owner) as o,
        client(tcp_url(cluster), admin) as a,
        client(cluster.ws_url, member) as m,
        client(tcp_url(cluster), applicant) as p,
    ):
        group = await o.create_group("crew", [admin, member], policy=JoinPolicy.APPROVAL)
        await o.groups.set_admin(group, admin)
        appointed = await group_event(m, "admin")
        assert (appointed.accounts, appointed.by) == ((admin,), owner)

        assert await p.groups.apply(group, "hi there") is False
        asked = await group_event(a, "applied")
        assert (asked.accounts, asked.detail) == ((applicant,), "hi there")
        assert [x.account for x in await a.groups.applications(group)] == [applicant]
        with pytest.raises(RequestRefused) as refused:
            await m.groups.approve(group, applicant)
        assert refused.value.status == Status.FORBIDDEN
        await a.groups.approve(group, applicant)
        assert (await group_event(p, "approved")).by == admin

        await a.groups.mute(group, member)
        with pytest.raises(SendRefused) as muted:
            await m.send(group, "hello?", group=True)
        assert (muted.value.status, muted.value.message) == (
            Status.FORBIDDEN,
            "you are muted in this group",
        )
        await o.groups.update(group, announcement="be nice", policy=JoinPolicy.OPEN)
        detail = await p.group_detail(group)
        assert (detail.announcement, detail.join_policy) == ("be nice", JoinPolicy.OPEN)
        assert {x.account for x in detail.members if x.muted} == {member}
        assert {x.account for x in detail.members if x.admin} == {admin}

        await o.groups.transfer(group, admin)
        assert (await group_event(m, "transferred")).accounts == (admin, owner)
        with pytest.raises(RequestRefused):
            await o.groups.dismiss(group)
        await a.groups.dismiss(group)
        assert (await group_event(p, "dismissed")).by == admin
        with pytest.raises(RequestRefused) as gone:
            await p.group_detail(group)
        assert gone.value.status == Status.NOT_FOUND


async def test_chat_group_admin_commands(cluster: Cluster) -> None:
    me, peer = name("ann"), name("ben")
    async with client(cluster.ws_url, me) as c, client(tcp_url(cluster), peer) as other:
        group = await c.create_group("crew", [peer])
        out = io.StringIO()

        async def lines() -> AsyncIterator[str]:
            for line in (
                f"/policy {group} open",
                f"/update {group} announcement read the rules",
                f"/admin {group} {peer}",
                f"/mute #{group}",
                f"/info {group}",
                f"/unmute {group}",
                f"/applications {group}",
                "/mute",
                f"/dismiss {group}",
                f"/info {group}",
            ):
                yield line + "\n"
            await asyncio.sleep(0.2)  # the events printer catches up
            yield "/quit\n"

        async with asyncio.timeout(15):
            assert await run(c, lines(), out) == 0
        text = out.getvalue()
        for expected in (
            f"#{group} is now open",
            f"#{group} announcement updated",
            f"{peer} is an admin of #{group}",
            f"muted the whole group in #{group}",
            f"#{group} crew: owner {me}, open, muted",
            f"  admins: {peer}",
            "  announcement: read the rules",
            f"unmuted the whole group in #{group}",
            f"#{group} applications:\n  (none)",
            "usage: /mute <group> [account]",
            f"dismissed #{group}",
            "! NOT_FOUND (410)",
        ):
            assert expected in text, (expected, text)
        assert (await group_event(other, "dismissed")).by == me
