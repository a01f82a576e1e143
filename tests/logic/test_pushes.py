"""The pusher keeps what cannot go out now, sends it when it can, and gives up (logged,
counted) only after the hold time or beyond the bound. A fake clock drives the hold."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from data_plane.logic.context import GatewayHub
from data_plane.logic.pushes import Pusher, PushPart
from data_plane.metrics import LOGIC_REGISTRY as REGISTRY
from data_plane.storage.errors import SessionStoreUnavailable
from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.storage.sessions.protocol import Location, LocationsUnavailable
from data_plane.wire import LogicPacket, decode_packet, pb

pytestmark = pytest.mark.anyio


class FlakyStore(MemorySessionStore):
    """Fails lookups while ``failing``."""

    failing = False

    async def get_locations_many(
        self, tenant: str, accounts: Sequence[str]
    ) -> dict[str, list[Location]]:
        if self.failing:
            raise SessionStoreUnavailable("down")
        return await super().get_locations_many(tenant, accounts)


class Hub(GatewayHub):
    """Gateways in ``up`` take everything; others are not linked."""

    def __init__(self) -> None:
        super().__init__()
        self.up: set[str] = set()
        self.sent: list[tuple[str, LogicPacket]] = []

    def send(self, gateway_id: str, data: bytes) -> bool:
        if gateway_id not in self.up:
            return False
        packet = decode_packet(data)
        assert isinstance(packet, LogicPacket)
        self.sent.append((gateway_id, packet))
        return True

    def linked(self, gateway_id: str) -> bool:
        return gateway_id in self.up

    def link(self, gateway_id: str) -> None:
        self.up.add(gateway_id)
        self.on_attach(gateway_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def given_up(reason: str) -> float:
    value = REGISTRY.get_sample_value("cirno_logic_pushes_given_up_total", {"reason": reason})
    return value or 0.0


async def online(store: MemorySessionStore, account: str, gateway: str) -> None:
    await store.add_location(Location("t", account, "d", f"{gateway}_{account}", gateway, 0))


def push(n: int) -> PushPart:
    packet = LogicPacket.make_push("chat.user.talk", pb.MessagePush(messageId=n))
    return PushPart(["bob"], packet, {"bob": n})


def bodies(hub: Hub) -> list[tuple[str, int, str | None]]:
    return [(g, p.parse_body(pb.MessagePush).messageId, p.meta_value("seqs")) for g, p in hub.sent]


async def test_a_failing_store_keeps_pushes_in_order_until_it_answers() -> None:
    store, hub, clock = FlakyStore(), Hub(), Clock()
    hub.up.add("gw")
    await online(store, "bob", "gw")
    pusher = Pusher(store, hub, clock=clock)
    store.failing = True
    await pusher.push("t", "", [push(1)])
    store.failing = False
    await pusher.push("t", "", [push(2)])  # queued behind the first: order kept
    assert hub.sent == [] and pusher.pending == 2
    await pusher.retry_once()
    assert bodies(hub) == [("gw", 1, "1"), ("gw", 2, "2")]
    assert pusher.pending == 0


async def test_pushes_wait_for_a_gateway_that_has_not_linked_yet() -> None:
    store, hub, clock = FlakyStore(), Hub(), Clock()
    await online(store, "bob", "gw-2")
    pusher = Pusher(store, hub, clock=clock)
    await pusher.push("t", "", [push(1)])
    await pusher.push("t", "", [push(2)])
    assert pusher.pending == 2
    clock.now += 29
    hub.link("gw-2")  # its link comes up: what waited goes first, in order
    assert bodies(hub) == [("gw-2", 1, "1"), ("gw-2", 2, "2")]
    assert pusher.pending == 0


async def test_held_pushes_are_given_up_after_the_hold_and_beyond_the_bound() -> None:
    store, hub, clock = FlakyStore(), Hub(), Clock()
    await online(store, "bob", "gone")
    pusher = Pusher(store, hub, clock=clock, hold=30, max_pending=2)
    before_full, before_link = given_up("full"), given_up("gateway_link")
    for n in (1, 2, 3):
        await pusher.push("t", "", [push(n)])
    assert pusher.pending == 2 and given_up("full") == before_full + 1
    clock.now += 31
    await pusher.retry_once()
    assert pusher.pending == 0 and given_up("gateway_link") == before_link + 2
    assert hub.sent == []


class HalfStore(MemorySessionStore):
    """Like a Redis Cluster with one failing master: ``unreadable`` accounts fail."""

    unreadable: frozenset[str] = frozenset()

    async def get_locations_many(
        self, tenant: str, accounts: Sequence[str]
    ) -> dict[str, list[Location]]:
        found = await super().get_locations_many(tenant, accounts)
        missing = [a for a in accounts if a in self.unreadable]
        if missing:
            readable = {a: v for a, v in found.items() if a not in self.unreadable}
            raise LocationsUnavailable("one master down", readable, missing)
        return found


def push_to(n: int, accounts: list[str]) -> PushPart:
    packet = LogicPacket.make_push("chat.group.talk", pb.MessagePush(messageId=n))
    return PushPart(accounts, packet, dict.fromkeys(accounts, n))


async def test_a_partly_failing_store_holds_only_the_unreadable_accounts() -> None:
    store, hub, clock = HalfStore(), Hub(), Clock()
    hub.up.add("gw")
    for account in ("alice", "bob", "carol"):
        await online(store, account, "gw")
    pusher = Pusher(store, hub, clock=clock)
    store.unreadable = frozenset({"bob"})
    await pusher.push("t", "", [push_to(1, ["alice", "bob"])])
    await pusher.push("t", "", [push_to(2, ["carol"])])  # not behind the held part
    sent = [(p.parse_body(pb.MessagePush).messageId, p.meta_value("channels")) for _, p in hub.sent]
    assert sent == [(1, "gw_alice"), (2, "gw_carol")]
    assert pusher.pending == 1
    await pusher.retry_once()  # bob still unreadable: still held, nothing sent twice
    assert len(hub.sent) == 2 and pusher.pending == 1
    store.unreadable = frozenset()
    await pusher.retry_once()
    last = hub.sent[-1][1]
    assert (last.parse_body(pb.MessagePush).messageId, last.meta_value("channels")) == (
        1,
        "gw_bob",
    )
    assert pusher.pending == 0
