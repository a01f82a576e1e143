"""Catch-up benchmark: a new device syncs ``messages`` pending messages.

Theory of operation
-------------------
First the backlog: ``senders`` clients send ``messages`` 1:1 messages (``window`` in
flight each) to an account that has never logged in, until every one is acknowledged
(stored). Then the clock starts: the receiver connects and logs in as a new device and
pulls its inbox the way a client does (``chat.offline.index`` pages one after another,
each from the last id of the previous one; ``chat.offline.content`` for up to
``MAX_CONTENT_IDS`` ids a request, ``content_in_flight`` requests at a time, asked for as
soon as their index page arrived). The clock stops when every content is held.

The run checks what the promises say: every acknowledged message arrives exactly once,
index entries in ascending inbox sequence (oldest first; with several logic nodes the
message ids of different nodes need not ascend with it), contents in the order asked.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from bench.client import BenchError, close_all, open_client, open_clients
from bench.procs import CpuMeter
from bench.targets import Target
from data_plane.transport.ws import WsConnection
from data_plane.wire import (
    Command,
    Flag,
    LogicPacket,
    MessageType,
    Status,
    decode_packet,
    pb,
)

USER_TALK = str(Command.CHAT_USER_TALK)
MAX_CONTENT_IDS = 200
"""The most ids one ``chat.offline.content`` request may carry (docs/protocol.md)."""


@dataclass(frozen=True)
class CatchupConfig:
    """Backlog size and how the new device pulls it."""

    messages: int = 100_000
    senders: int = 20
    window: int = 32
    content_in_flight: int = 16
    body_size: int = 100
    timeout: float = 600.0


@dataclass
class CatchupResult:
    """What one run measured (seconds)."""

    target: str
    config: CatchupConfig
    backlog_seconds: float
    login_seconds: float
    index_seconds: float
    total_seconds: float
    index_pages: int
    content_requests: int
    received: int
    duplicates: int
    out_of_order: int
    cpu_percent: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        out["messages_per_s"] = round(self.received / self.total_seconds, 1)
        return out


class _Exchange:
    """Requests on one connection, matched to their responses by sequence."""

    def __init__(self, conn: WsConnection) -> None:
        self.conn = conn
        self.sequence = 1  # 1 was the login
        self._waiting: dict[int, tuple[anyio.Event, list[LogicPacket]]] = {}

    async def request(self, command: Command, body: Any) -> LogicPacket:
        self.sequence += 1
        sequence = self.sequence
        event, slot = anyio.Event(), list[LogicPacket]()
        self._waiting[sequence] = (event, slot)
        self.conn.send(LogicPacket.request(str(command), body, sequence=sequence).encode())
        await event.wait()
        packet: LogicPacket = slot[0]
        if packet.status != Status.SUCCESS:
            raise BenchError(f"{command} failed with status {packet.status}")
        return packet

    async def receive_loop(self) -> None:
        while True:
            for raw in await self.conn.receive():
                packet = decode_packet(raw)
                if isinstance(packet, LogicPacket) and packet.flag == Flag.RESPONSE:
                    waiting = self._waiting.pop(packet.sequence, None)
                    if waiting is not None:
                        waiting[1].append(packet)
                        waiting[0].set()


async def _fill(target: Target, config: CatchupConfig, receiver: str, run_id: str) -> None:
    """Send the backlog to ``receiver`` and wait until every message is acknowledged."""
    names = [f"{run_id}s{i}" for i in range(config.senders)]
    conns = await open_clients(target.ws_url, [target.token_for(n) for n in names])
    shares = [config.messages // config.senders] * config.senders
    shares[0] += config.messages - sum(shares)
    try:
        async with anyio.create_task_group() as tg:
            for conn, name, share in zip(conns, names, shares, strict=True):
                tg.start_soon(_send_all, conn, name, receiver, share, config)
    finally:
        with anyio.CancelScope(shield=True):
            await close_all(conns)


async def _send_all(
    conn: WsConnection, name: str, receiver: str, count: int, config: CatchupConfig
) -> None:
    padding = "x" * max(0, config.body_size - len(name) - 12)
    sent = answered = 0

    def send() -> None:
        nonlocal sent
        sent += 1
        req = pb.MessageReq(
            type=MessageType.TEXT, body=f"{name}.{sent}:{padding}", client_msg_id=f"{name}.{sent}"
        )
        conn.send(LogicPacket.request(USER_TALK, req, sequence=sent + 1, dest=receiver).encode())

    for _ in range(min(config.window, count)):
        send()
    while answered < count:
        for raw in await conn.receive():
            packet = decode_packet(raw)
            if isinstance(packet, LogicPacket) and packet.flag == Flag.RESPONSE:
                if packet.status != Status.SUCCESS:
                    raise BenchError(f"a backlog message failed with status {packet.status}")
                answered += 1
                if sent < count:
                    send()


async def run_catchup(target: Target, config: CatchupConfig) -> CatchupResult:
    """Fill the backlog, then time the new device's sync (see the module docstring)."""
    run_id = uuid.uuid4().hex[:6]
    receiver = f"{run_id}r"
    began = time.perf_counter()
    with anyio.fail_after(config.timeout):
        await _fill(target, config, receiver, run_id)
    backlog_seconds = time.perf_counter() - began
    meter = CpuMeter(target.processes)
    meter.start(time.perf_counter())
    start = time.perf_counter()
    conn = await open_client(target.ws_url, target.token_for(receiver))
    logged_in = time.perf_counter()
    exchange = _Exchange(conn)
    ids: list[int] = []
    seqs: list[int] = []
    held: list[int] = []
    pages = requests = 0
    limiter = anyio.CapacityLimiter(config.content_in_flight)

    async def contents(chunk: list[int]) -> None:
        nonlocal requests
        async with limiter:
            requests += 1
            packet = await exchange.request(
                Command.CHAT_OFFLINE_CONTENT, pb.MessageContentReq(message_ids=chunk)
            )
        got = [c.messageId for c in packet.parse_body(pb.MessageContentResp).contents]
        if got != chunk:
            raise BenchError("contents came back in another order than asked")
        held.extend(got)

    try:
        with anyio.fail_after(config.timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(exchange.receive_loop)
                async with anyio.create_task_group() as fetches:
                    after, more = 0, True
                    while more:
                        packet = await exchange.request(
                            Command.CHAT_OFFLINE_INDEX, pb.MessageIndexReq(message_id=after)
                        )
                        pages += 1
                        page = packet.parse_body(pb.MessageIndexResp)
                        new = [entry.message_id for entry in page.indexes]
                        ids.extend(new)
                        seqs.extend(entry.seq for entry in page.indexes)
                        more = page.has_more and bool(new)
                        after = new[-1] if new else after
                        for first in range(0, len(new), MAX_CONTENT_IDS):
                            fetches.start_soon(contents, new[first : first + MAX_CONTENT_IDS])
                    indexed = time.perf_counter()
                tg.cancel_scope.cancel()
        done = time.perf_counter()
    finally:
        with anyio.CancelScope(shield=True):
            await close_all([conn])
    cpu = meter.stop(time.perf_counter())
    return CatchupResult(
        target=target.name,
        config=config,
        backlog_seconds=round(backlog_seconds, 3),
        login_seconds=round(logged_in - start, 4),
        index_seconds=round(indexed - start, 4),
        total_seconds=round(done - start, 4),
        index_pages=pages,
        content_requests=requests,
        received=len(set(held)),
        duplicates=len(held) - len(set(held)) + len(ids) - len(set(ids)),
        out_of_order=sum(1 for a, b in itertools.pairwise(seqs) if b <= a),
        cpu_percent=cpu,
    )


def format_table(results: list[CatchupResult]) -> str:
    """One line per run (seconds)."""
    head = (
        f"{'target':<8} {'messages':>9} {'received':>9} {'login':>7} {'index':>7} "
        f"{'total':>7} {'pages':>6} {'requests':>8} {'dup':>4} {'disorder':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.target:<8} {r.config.messages:>9} {r.received:>9} {r.login_seconds:>7.3f} "
            f"{r.index_seconds:>7.3f} {r.total_seconds:>7.3f} {r.index_pages:>6} "
            f"{r.content_requests:>8} {r.duplicates:>4} {r.out_of_order:>8}"
        )
    return "\n".join(lines)
