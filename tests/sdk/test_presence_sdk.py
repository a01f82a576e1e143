"""The SDK's presence and typing against real ``cirno up`` processes."""

from __future__ import annotations

import pytest

from cirno.harness import Cluster
from cirno_sdk import PresenceChanged, Reconnected, RequestRefused, Typing
from data_plane.wire import Status
from tests.sdk.test_client_e2e import client, name, next_event

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_presence_events_and_typing(cluster: Cluster) -> None:
    alice, bob = name("alice"), name("bob")
    async with client(cluster.ws_url, alice) as a:
        assert await a.subscribe_presence(bob) == {bob: False}
        async with client(cluster.ws_url, bob) as b:
            came = await next_event(a, PresenceChanged)
            assert (came.account, came.online) == (bob, True)
            assert came.at > 0

            assert await a.typing(bob) is True
            typing = await next_event(b, Typing)
            assert typing == Typing(alice, "", False)
            assert await a.typing(bob) is False  # within 2 s: rate-limited
            await b.sync()  # typing is never stored: nothing to sync on SQLite either
            assert b.store.messages() == []
        went = await next_event(a, PresenceChanged)
        assert (went.account, went.online) == (bob, False)

        await a.unsubscribe_presence(bob)
        async with client(cluster.ws_url, bob):
            with pytest.raises(TimeoutError):
                await next_event(a, PresenceChanged, timeout=0.5)


async def test_group_typing_needs_membership(cluster: Cluster) -> None:
    owner, outsider = name("owner"), name("outsider")
    async with client(cluster.ws_url, owner) as o, client(cluster.ws_url, outsider) as x:
        group = await o.create_group("g", [])
        with pytest.raises(RequestRefused) as refused:
            await x.typing(group, group=True)
        assert refused.value.status == Status.FORBIDDEN
        assert await o.typing(group, group=True) is True  # nobody else online: fine


async def test_subscriptions_come_back_after_a_reconnect(cluster: Cluster) -> None:
    carol, dave = name("carol"), name("dave")
    async with client(cluster.ws_url, carol) as c:
        await c.subscribe_presence(dave)
        c._link.transport.abort()  # type: ignore[union-attr]
        await next_event(c, Reconnected)
        state = await next_event(c, PresenceChanged)
        assert state == PresenceChanged(dave, False, 0)  # the state read on re-subscribe
        async with client(cluster.ws_url, dave):
            came = await next_event(c, PresenceChanged)
            assert (came.account, came.online) == (dave, True)
