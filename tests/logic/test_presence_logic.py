"""Presence settling, the expiry sweep and the typing rate limiter, on the in-process
session store with injected clocks (the end-to-end tests are in tests/e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import pytest

from data_plane.logic.context import GatewayHub, Request
from data_plane.logic.handlers.login import LoginHandlers
from data_plane.logic.handlers.presence import Presence
from data_plane.logic.handlers.presence_sweep import ExpirySweep
from data_plane.logic.handlers.typing import TypingLimiter
from data_plane.logic.tenant_stores import TenantStores
from data_plane.storage.messages.memory import MemoryMessageStore
from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.storage.sessions.presence import Watcher
from data_plane.wire import Command, LogicPacket, decode_packet, pb
from tests.capture import Capture

pytestmark = pytest.mark.anyio

WATCHER = Watcher("gw-1_ann_1", "gw-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def signin(account: str, channel: str, device: str = "phone") -> Request:
    packet = LogicPacket.request(Command.LOGIN_SIGNIN, sequence=1, channel_id=channel)
    return Request(packet, "t", account, device, channel, "gw-2", "v", Capture(), 65536)


def presence_pushes(gateway: Capture) -> list[tuple[str, bool]]:
    found = []
    for raw in gateway.sent:
        packet = decode_packet(raw)
        assert isinstance(packet, LogicPacket)
        if packet.command == Command.PRESENCE_SUBSCRIBE:
            notify = packet.parse_body(pb.PresenceNotify)
            found.append((notify.account, notify.online))
            assert packet.meta_value("channels") == WATCHER.channel_id
    return found


@dataclass
class Rig:
    store: MemorySessionStore
    gateway: Capture
    presence: Presence
    clock: Clock
    login: LoginHandlers


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    store = MemorySessionStore()
    hub = GatewayHub()
    gateway = Capture()
    hub.attach("gw-1", gateway)
    clock = Clock()
    presence = Presence(store, hub, clock=clock)
    presence.sweep = ExpirySweep(presence.settle, after=190, clock=clock)
    await store.watch("t", WATCHER, ["bob"], limit=200, now_ms=0, ttl_ms=10**12)
    async with anyio.create_task_group() as tg:
        stores = TenantStores(MemoryMessageStore(node_id=1), None, tg, node_id=1)
        yield Rig(store, gateway, presence, clock, LoginHandlers(store, hub, stores, presence))
        tg.cancel_scope.cancel()


async def test_the_sweep_announces_offline_once_an_unrefreshed_location_is_gone(
    rig: Rig,
) -> None:
    store, gateway, presence, clock = rig.store, rig.gateway, rig.presence, rig.clock
    await rig.login.signin(signin("bob", "gw-2_bob_1"))
    assert presence_pushes(gateway) == [("bob", True)]
    assert len(presence.sweep) == 1

    # Its gateway died: no sign-out, and the location expires (as Redis would do it).
    await store.remove_location("t", "bob", "phone", "gw-2_bob_1")
    clock.now += 100
    assert await presence.sweep.sweep() == 0  # not stale yet
    clock.now += 100
    assert await presence.sweep.sweep() == 1
    assert presence_pushes(gateway) == [("bob", True), ("bob", False)]
    assert len(presence.sweep) == 0
    assert await presence.sweep.sweep() == 0


async def test_the_sweep_leaves_a_live_account_alone(rig: Rig) -> None:
    gateway, presence, clock = rig.gateway, rig.presence, rig.clock
    await rig.login.signin(signin("bob", "gw-2_bob_1"))
    clock.now += 500  # its refreshes went to another logic node: still online
    assert await presence.sweep.sweep() == 1
    assert presence_pushes(gateway) == [("bob", True)]


async def test_refreshes_keep_a_channel_out_of_the_sweep(rig: Rig) -> None:
    gateway, presence, clock, login = rig.gateway, rig.presence, rig.clock, rig.login
    await login.signin(signin("bob", "gw-2_bob_1"))
    for _ in range(5):
        clock.now += 60
        await login.refresh(signin("bob", "gw-2_bob_1"))
        assert await presence.sweep.sweep() == 0
    assert presence_pushes(gateway) == [("bob", True)]


async def test_the_sweep_is_bounded() -> None:
    sweep = ExpirySweep(_never, max_tracked=3, clock=Clock())
    for i in range(10):
        sweep.seen("t", f"a{i}", f"ch{i}")
    assert len(sweep) == 3


async def _never(tenant: str, account: str) -> None:
    raise AssertionError("not called")


def test_typing_limiter_one_per_interval_per_key_and_bounded() -> None:
    clock = Clock()
    limiter = TypingLimiter(interval=2.0, max_tracked=2, clock=clock)
    assert limiter.allow(("ch", "u:bob"))
    assert not limiter.allow(("ch", "u:bob"))
    assert limiter.allow(("ch", "g:team"))  # another conversation
    clock.now += 1.999
    assert not limiter.allow(("ch", "u:bob"))
    clock.now += 0.001
    assert limiter.allow(("ch", "u:bob"))
    assert limiter.allow(("other", "u:bob"))  # a third key: the oldest is forgotten
    assert limiter.allow(("ch", "g:team"))
