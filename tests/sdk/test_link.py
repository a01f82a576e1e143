"""The link's guarantees without sockets: responses answer requests by sequence, an
ended connection or a stop fails every waiting request, stopping is final, and waits
end at their deadline on the injected clock."""

from __future__ import annotations

import asyncio

import pytest

from cirno_sdk.errors import ClientClosed, ConnectionLost, DeadlineExceeded, KickedOut
from cirno_sdk.link import Link
from data_plane.wire import Command, LogicPacket, Status, decode_packet, pb

pytestmark = pytest.mark.anyio


class Pipe:
    """A transport that keeps what is sent, for a test to answer by hand."""

    def __init__(self) -> None:
        self.sent: list[LogicPacket] = []
        self.arrived = asyncio.Event()
        self.closed = False

    def send(self, packet: bytes) -> None:
        decoded = decode_packet(packet)
        assert isinstance(decoded, LogicPacket)
        self.sent.append(decoded)
        self.arrived.set()

    async def receive(self) -> bytes:
        raise AssertionError("the link never reads")

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_link(stops: list[int] | None = None, clock: Clock | None = None) -> Link:
    record = stops if stops is not None else []
    return Link(on_stop=lambda: record.append(1), clock=clock or Clock())


async def sent(pipe: Pipe, count: int) -> list[LogicPacket]:
    """The first ``count`` packets once they are on the pipe."""
    while len(pipe.sent) < count:
        pipe.arrived.clear()
        await pipe.arrived.wait()
    return pipe.sent[:count]


async def test_each_response_answers_the_request_with_its_sequence() -> None:
    link, pipe = make_link(), Pipe()
    link.attach(pipe)
    ask = pb.MessageIndexReq(message_id=1)
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(link.request(pipe, Command.CHAT_OFFLINE_INDEX, ask, timeout=5))
        second = tg.create_task(link.request(pipe, Command.CHAT_OFFLINE_INDEX, ask, timeout=5))
        one, two = await sent(pipe, 2)
        assert one.sequence != two.sequence
        link.resolve(two.response(Status.NOT_FOUND))
        link.resolve(one.response(Status.SUCCESS))
        link.resolve(one.response(Status.FORBIDDEN))  # a second answer changes nothing
    assert first.result().status == Status.SUCCESS
    assert second.result().status == Status.NOT_FOUND


async def test_an_ended_connection_fails_waiting_requests_and_refuses_new_ones() -> None:
    link, pipe = make_link(), Pipe()
    link.attach(pipe)
    waiting = asyncio.create_task(
        link.request(pipe, Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=7), timeout=5)
    )
    await sent(pipe, 1)
    link.detach()
    with pytest.raises(ConnectionLost):
        await waiting
    link.attach(Pipe())
    with pytest.raises(ConnectionLost):  # the old transport is no longer current
        await link.request(pipe, Command.CHAT_TALK_ACK, pb.MessageAckReq(), timeout=5)


async def test_stopping_is_final_and_fails_everything_with_its_error() -> None:
    stops: list[int] = []
    link, pipe = make_link(stops), Pipe()
    link.start()
    link.attach(pipe)
    link.logged_in("alice", "ch-1")
    assert await link.wait_online(deadline=200.0) is pipe
    waiting = asyncio.create_task(
        link.request(pipe, Command.CHAT_TALK_ACK, pb.MessageAckReq(messageId=7), timeout=5)
    )
    await sent(pipe, 1)
    link.stop(KickedOut("kicked out"))
    link.stop(ClientClosed("closed later"))
    assert stops == [1]
    assert link.is_stopped() and not link.online
    with pytest.raises(KickedOut):
        await waiting
    with pytest.raises(KickedOut):
        await link.wait_online(deadline=200.0)
    with pytest.raises(KickedOut):
        await link.wait_until(lambda: False, 200.0, "late")


async def test_waits_end_at_their_deadline_on_the_injected_clock() -> None:
    clock = Clock()
    link = make_link(clock=clock)
    with pytest.raises(ClientClosed):  # never connected: nothing to wait for
        await link.wait_online(deadline=clock.now + 60)
    link.start()
    clock.now = 500.0
    with pytest.raises(DeadlineExceeded, match="not connected"):
        await link.wait_online(deadline=499.0)
    with pytest.raises(DeadlineExceeded, match="sync late"):
        await link.wait_until(lambda: False, 499.0, "sync late")
    done = False

    async def finish() -> None:
        nonlocal done
        done = True
        link.pulse()

    async with asyncio.TaskGroup() as tg:
        waiter = tg.create_task(link.wait_until(lambda: done, 600.0, "late"))
        tg.create_task(finish())
    assert waiter.result() is None and done
