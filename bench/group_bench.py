"""Group benchmark: one sender, a group of ``members`` accounts, all online over WebSocket.

Theory of operation
-------------------
``members`` clients log in (one WebSocket connection each, all in this process); the
first creates a group of all of them. Then the sender sends ``chat.group.talk``
messages in passes, each with its own window: how many messages may be *open* (sent but
not yet both answered and delivered to every member) at a time.

- ``sequential`` (window 1): the next message goes out when the previous one has been
  answered and has reached every member, so each latency is one message's alone;
- ``burst`` (a larger window): several messages in the system at once, which measures
  deliveries per second when the store and the fan-out are kept busy.

For every message the run records send→response (the store: one content row and one
inbox row per member, committed), send→first member and send→last member (the time at
which the load generator has seen the push on every member connection but the
sender's). A pass ends when every message reached every member, or after ``timeout``.
Deliveries/s is the pushes received divided by the time from the pass's first send to
its last delivery.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from bench.client import BenchError, close_all, open_clients
from bench.procs import CpuMeter
from bench.stats import Summary, summarize
from bench.targets import Target
from data_plane.transport.ws import WsConnection
from data_plane.wire import Command, Flag, LogicPacket, MessageType, decode_packet, pb

GROUP_TALK = str(Command.CHAT_GROUP_TALK)
CREATE_SEQUENCE = 2  # 1 was the login


@dataclass(frozen=True)
class GroupConfig:
    """Shape of one run: group size, and messages and window of each pass."""

    members: int = 1000
    messages: int = 50
    burst_messages: int = 50
    burst_window: int = 8
    body_size: int = 100
    timeout: float = 60.0
    login_concurrency: int = 50


@dataclass
class PassResult:
    """One pass of messages through the group."""

    name: str
    window: int
    messages: int
    complete: int
    """Messages that reached every member before the pass timed out."""
    deliveries: int
    expected_deliveries: int
    deliveries_per_s: float
    elapsed_s: float
    store: Summary
    first_member: Summary
    last_member: Summary
    cpu_percent: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        for key in ("store", "first_member", "last_member"):
            out[key] = getattr(self, key).as_dict()
        out["deliveries_per_s"] = round(self.deliveries_per_s, 1)
        out["elapsed_s"] = round(self.elapsed_s, 3)
        return out


@dataclass
class GroupResult:
    """Every pass of one run against one target."""

    target: str
    config: GroupConfig
    login_s: float
    passes: list[PassResult]
    background_before: float | None = None
    """Machine load (% of one core) just before the run, our servers idle."""
    attempts_others: list[float] = field(default_factory=list)
    """Others' CPU (% of one core) in each attempt; this result is the least disturbed."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "target": self.target,
            "config": asdict(self.config),
            "login_s": round(self.login_s, 3),
            "background_before": self.background_before,
            "attempts_others": self.attempts_others,
            "passes": [p.as_dict() for p in self.passes],
        }


class _Tracker:
    """Per message: send time, response time, deliveries so far, first and last.

    A message is *open* from its send until it was answered and reached every member
    (or failed); ``on_done`` runs each time one closes, so the sender can refill its
    window from whichever connection saw the last event.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.sent: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.failed: set[str] = set()
        self.open: set[str] = set()
        self.deliveries = 0
        self.last_delivery = 0.0
        self.on_done: Callable[[], None] | None = None

    def opened(self, client_msg_id: str, now: float) -> None:
        self.count[client_msg_id] = 0
        self.sent[client_msg_id] = now
        self.open.add(client_msg_id)

    def delivered(self, client_msg_id: str, now: float) -> None:
        seen = self.count.get(client_msg_id)
        if seen is None:
            return  # a message of another pass, or not ours
        seen += 1
        self.count[client_msg_id] = seen
        self.deliveries += 1
        self.last_delivery = now
        if seen == 1:
            self.first[client_msg_id] = now
        if seen == self.expected:
            self.last[client_msg_id] = now
            self._check(client_msg_id)

    def answer(self, client_msg_id: str, ok: bool, now: float) -> None:
        if ok:
            self.answered[client_msg_id] = now
        else:
            self.failed.add(client_msg_id)
        self._check(client_msg_id)

    def _check(self, client_msg_id: str) -> None:
        if client_msg_id not in self.open:
            return
        failed = client_msg_id in self.failed
        if failed or (client_msg_id in self.answered and client_msg_id in self.last):
            self.open.discard(client_msg_id)
            if self.on_done is not None:
                self.on_done()


class _Members:
    """Receive loops of every member connection, feeding the current tracker."""

    def __init__(self) -> None:
        self.tracker: _Tracker | None = None

    async def loop(self, conn: WsConnection) -> None:
        while True:
            batch = await conn.receive()
            now = time.perf_counter()
            tracker = self.tracker
            for raw in batch:
                packet = decode_packet(raw)
                if (
                    tracker is not None
                    and isinstance(packet, LogicPacket)
                    and packet.flag == Flag.PUSH
                    and packet.command == GROUP_TALK
                ):
                    tracker.delivered(packet.parse_body(pb.MessagePush).client_msg_id, now)


async def _create_group(sender: WsConnection, members: list[str]) -> str:
    req = pb.GroupCreateReq(name="bench", members=members)
    sender.send(
        LogicPacket.request(Command.CHAT_GROUP_CREATE, req, sequence=CREATE_SEQUENCE).encode()
    )
    with anyio.fail_after(30):
        while True:
            for raw in await sender.receive():
                packet = decode_packet(raw)
                if (
                    isinstance(packet, LogicPacket)
                    and packet.flag == Flag.RESPONSE
                    and packet.sequence == CREATE_SEQUENCE
                ):
                    if packet.status != 0:
                        raise BenchError(f"chat.group.create failed: status {packet.status}")
                    return packet.parse_body(pb.GroupCreateResp).group_id


class _GroupSender:
    """The sender: a window of ``chat.group.talk`` requests, answered in its own loop."""

    def __init__(self, conn: WsConnection, name: str, group_id: str, body_size: int) -> None:
        self.conn = conn
        self.name = name
        self.group_id = group_id
        self.sequence = CREATE_SEQUENCE
        self.padding = "x" * max(0, body_size - len(name) - 12)

    async def run_pass(
        self, tracker: _Tracker, window: int, messages: int, timeout: float
    ) -> float:
        """Send ``messages``, at most ``window`` of them open (not yet answered and
        delivered to every member) at a time; returns the first send time."""
        names: dict[int, str] = {}
        remaining = messages

        def send_one() -> None:
            nonlocal remaining
            remaining -= 1
            self.sequence += 1
            client_msg_id = f"{self.name}.{self.sequence}"
            req = pb.MessageReq(
                type=MessageType.TEXT,
                body=f"{client_msg_id}:{self.padding}",
                client_msg_id=client_msg_id,
            )
            packet = LogicPacket.request(
                GROUP_TALK, req, sequence=self.sequence, dest=self.group_id
            )
            data = packet.encode()
            names[self.sequence] = client_msg_id
            tracker.opened(client_msg_id, time.perf_counter())
            self.conn.send(data)

        def refill() -> None:
            if remaining:
                send_one()

        tracker.on_done = refill
        started = time.perf_counter()
        with anyio.move_on_after(timeout):
            for _ in range(min(window, remaining)):
                send_one()
            while remaining or tracker.open:
                with anyio.move_on_after(0.05):
                    batch = await self.conn.receive()
                    now = time.perf_counter()
                    for raw in batch:
                        packet = decode_packet(raw)
                        if not isinstance(packet, LogicPacket) or packet.flag != Flag.RESPONSE:
                            continue
                        client_msg_id = names.pop(packet.sequence, "")
                        if client_msg_id:
                            tracker.answer(client_msg_id, packet.status == 0, now)
        tracker.on_done = None
        return started


def _latencies(start: dict[str, float], end: dict[str, float]) -> list[float]:
    return [end[key] - start[key] for key in end if key in start]


async def run_group(target: Target, config: GroupConfig) -> GroupResult:
    """Log the members in, create the group, run the sequential and burst passes."""
    run_id = uuid.uuid4().hex[:6]
    names = [f"{run_id}m{i}" for i in range(config.members)]
    started = time.perf_counter()
    conns = await open_clients(
        target.ws_url,
        [target.token_for(name) for name in names],
        concurrency=config.login_concurrency,
        timeout=max(60.0, config.members / 10),
    )
    login_s = time.perf_counter() - started
    members = _Members()
    passes: list[PassResult] = []
    try:
        async with anyio.create_task_group() as tg:
            group_id = await _create_group(conns[0], names[1:])
            for conn in conns[1:]:
                tg.start_soon(members.loop, conn)
            await anyio.sleep(0.5)  # let the GroupCreateNotify pushes settle
            sender = _GroupSender(conns[0], names[0], group_id, config.body_size)
            plan = [("sequential", 1, config.messages)]
            if config.burst_messages > 0:
                plan.append(("burst", config.burst_window, config.burst_messages))
            for name, window, count in plan:
                passes.append(await _run_pass(target, config, members, sender, name, window, count))
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await close_all(conns)
    return GroupResult(target=target.name, config=config, login_s=login_s, passes=passes)


async def _run_pass(
    target: Target,
    config: GroupConfig,
    members: _Members,
    sender: _GroupSender,
    name: str,
    window: int,
    count: int,
) -> PassResult:
    tracker = _Tracker(config.members - 1)
    members.tracker = tracker
    meter = CpuMeter(target.processes)
    meter.start(time.perf_counter())
    first_send = await sender.run_pass(tracker, window, count, config.timeout)
    cpu = meter.stop(time.perf_counter())
    members.tracker = None
    elapsed = max(tracker.last_delivery - first_send, 1e-9)
    return PassResult(
        name=name,
        window=window,
        messages=count,
        complete=len(tracker.last),
        deliveries=tracker.deliveries,
        expected_deliveries=count * tracker.expected,
        deliveries_per_s=tracker.deliveries / elapsed if tracker.deliveries else 0.0,
        elapsed_s=elapsed,
        store=summarize(_latencies(tracker.sent, tracker.answered)),
        first_member=summarize(_latencies(tracker.sent, tracker.first)),
        last_member=summarize(_latencies(tracker.sent, tracker.last)),
        cpu_percent=cpu,
    )


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def format_table(results: list[GroupResult]) -> str:
    """One line per pass: deliveries/s and send→response / first / last member (ms)."""
    head = (
        f"{'target':<8} {'pass':<10} {'win':>3} {'msgs':>5} {'deliv/s':>9} "
        f"{'store p50':>9} {'p99':>7} {'first p50':>9} {'last p50':>9} {'p99':>7} "
        f"{'max':>7} {'complete':>8}"
    )
    lines = [head, "-" * len(head)]
    for result in results:
        for p in result.passes:
            lines.append(
                f"{result.target:<8} {p.name:<10} {p.window:>3} {p.messages:>5} "
                f"{p.deliveries_per_s:>9.0f} {_fmt(p.store.p50_ms):>9} "
                f"{_fmt(p.store.p99_ms):>7} {_fmt(p.first_member.p50_ms):>9} "
                f"{_fmt(p.last_member.p50_ms):>9} {_fmt(p.last_member.p99_ms):>7} "
                f"{_fmt(p.last_member.max_ms):>7} {p.complete:>4}/{p.messages:<3}"
            )
    return "\n".join(lines)
