"""The idle pull: a connected client syncs after a quiet interval, on the injected clock.

The delivery part runs against an in-memory server (a transport that answers the
offline index and content requests from a list), and the test moves the clock by hand:
no sleeping. The pull finds a message whose push was lost and nothing after it revealed
the gap; it arrives once and in inbox order, and a late duplicate push changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cirno_sdk.acks import AckBatcher
from cirno_sdk.delivery import Delivery
from cirno_sdk.feeds import Feeds
from cirno_sdk.link import Link
from cirno_sdk.ordering import Orderer
from cirno_sdk.pull import IdlePull
from cirno_sdk.store import MemoryStore
from data_plane.wire import Command, LogicPacket, Status, decode_packet, pb
from tests.sdk.test_link import Clock

pytestmark = pytest.mark.anyio


class InboxServer:
    """A transport answering sync and ack requests from bob's inbox, kept in a list."""

    def __init__(self, answer: Callable[[LogicPacket], None]) -> None:
        self.inbox: list[int] = []  # message ids; the inbox sequence is position + 1
        self.requests: list[str] = []
        self.closed = False
        self._answer = answer

    def send(self, raw: bytes) -> None:
        packet = decode_packet(raw)
        assert isinstance(packet, LogicPacket)
        self.requests.append(packet.command)
        if packet.command == Command.CHAT_OFFLINE_INDEX:
            after = packet.parse_body(pb.MessageIndexReq).message_id
            start = self.inbox.index(after) + 1 if after else 0
            entries = [
                pb.MessageIndex(message_id=mid, direction=1, accountB="alice", seq=i + 1)
                for i, mid in enumerate(self.inbox)
            ][start:]
            body: pb.MessageIndexResp | pb.MessageContentResp = pb.MessageIndexResp(indexes=entries)
        elif packet.command == Command.CHAT_OFFLINE_CONTENT:
            ids = packet.parse_body(pb.MessageContentReq).message_ids
            body = pb.MessageContentResp(
                contents=[pb.MessageContent(messageId=mid, type=1, body=f"m{mid}") for mid in ids]
            )
        else:
            assert packet.command == Command.CHAT_TALK_ACK
            self._answer(packet.response(Status.SUCCESS))
            return
        response = packet.response(Status.SUCCESS, body)
        asyncio.get_running_loop().call_soon(self._answer, response)

    async def receive(self) -> bytes:
        raise AssertionError("delivery never reads")

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def syncs(self) -> int:
        return self.requests.count(Command.CHAT_OFFLINE_INDEX)


def push(message_id: int, inbox_seq: int) -> LogicPacket:
    """alice's 1:1 message pushed to bob."""
    body = pb.MessagePush(
        messageId=message_id, type=1, body=f"m{message_id}", sender="alice", inbox_seq=inbox_seq
    )
    return LogicPacket.make_push(Command.CHAT_USER_TALK, body)


class Harness:
    """bob's delivery part on a logged-in link, with a clock and jitter the test sets."""

    def __init__(self, interval: float) -> None:
        self.clock = Clock()
        self.link = Link(on_stop=lambda: None, clock=self.clock)
        self.store = MemoryStore()
        self.feeds = Feeds(on_event=None)
        self.server = InboxServer(self.link.resolve)
        self.pull = IdlePull(interval=interval, jitter=0.2, clock=self.clock, rand=lambda: 0.5)
        self.delivery = Delivery(
            self.link,
            self.feeds,
            self.store,
            Orderer(is_known=self.store.contains, gap_wait=3.0, clock=self.clock),
            AckBatcher(interval=0.5, every=50, clock=self.clock),
            self.pull,
            response_timeout=5.0,
            content_batch=200,
            clock=self.clock,
        )

    def delivered(self) -> list[int]:
        return [m.message_id for m in self.store.messages()]

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()``; the sync loop wakes the link's waiters at the end of
        every sync (bounded in real time: the test never hangs)."""
        async with asyncio.timeout(5):
            await self.link.wait_until(done, self.clock.now + 3600, "never")

    async def settle(self) -> None:
        """Give every task a few turns of the loop."""
        for _ in range(20):
            await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.delivery.clock_moved()


async def test_the_idle_pull_finds_a_lost_push_once_and_in_order() -> None:
    h = Harness(interval=30.0)
    h.server.inbox = [11]
    h.link.start()
    h.link.attach(h.server)
    h.link.logged_in("bob", "ch-1")
    h.delivery.session_starting()
    h.delivery.logged_in()
    serving = asyncio.create_task(h.delivery.serve(h.server))
    try:
        await h.until(lambda: h.delivered() == [11])
        first_syncs = h.server.syncs()

        h.server.inbox += [12, 13]
        h.delivery.on_push(push(12, 2))  # 13's push is lost, and nothing follows it
        assert h.delivered() == [11, 12]

        h.advance(29.9)  # quiet, but not for long enough (jitter factor 1.0 here)
        await h.settle()
        assert h.server.syncs() == first_syncs
        assert h.delivered() == [11, 12]

        h.advance(0.2)
        await h.until(lambda: h.delivered() == [11, 12, 13])
        assert h.server.syncs() == first_syncs + 1

        h.delivery.on_push(push(13, 3))  # the lost push turns up late: not delivered again
        h.server.inbox.append(14)
        h.delivery.on_push(push(14, 4))
        assert h.delivered() == [11, 12, 13, 14]
        h.feeds.close()
        assert [m.message_id async for m in h.feeds.messages()] == [11, 12, 13, 14]
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving


async def test_pushes_keep_postponing_the_pull_and_zero_disables_it() -> None:
    h = Harness(interval=10.0)
    h.server.inbox = [100]
    h.link.start()
    h.link.attach(h.server)
    h.link.logged_in("bob", "ch-1")
    h.delivery.session_starting()
    h.delivery.logged_in()
    serving = asyncio.create_task(h.delivery.serve(h.server))
    try:
        await h.until(lambda: h.server.syncs() == 1)
        for seq in range(2, 5):  # a push every 8 s: never 10 s of quiet
            h.advance(8.0)
            h.server.inbox.append(100 + seq)
            h.delivery.on_push(push(100 + seq, seq))
            await h.settle()
        assert h.server.syncs() == 1
        assert h.delivered() == [100, 102, 103, 104]
        h.advance(10.0)
        await h.until(lambda: h.server.syncs() == 2)
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    off = IdlePull(interval=0, jitter=0.2, clock=h.clock)
    assert not off.enabled and off.deadline() is None and not off.due()


def test_the_jitter_spreads_the_interval_both_ways() -> None:
    clock = Clock()
    low = IdlePull(interval=30.0, jitter=0.2, clock=clock, rand=lambda: 0.0)
    high = IdlePull(interval=30.0, jitter=0.2, clock=clock, rand=lambda: 0.999999)
    assert low.deadline() == pytest.approx(clock.now + 24.0)
    assert high.deadline() == pytest.approx(clock.now + 36.0, abs=1e-3)
    clock.now += 24.0
    assert low.due() and not high.due()
    low.activity()
    assert not low.due()
    with pytest.raises(ValueError):
        IdlePull(interval=30.0, jitter=1.0)
