"""1:1 chat benchmark: N sender/receiver pairs over WebSocket, K messages in flight each.

Theory of operation
-------------------
Every pair is two logged-in WebSocket connections (accounts ``<run>s<i>`` and
``<run>r<i>``). A sender keeps a window of ``window`` requests in flight: it starts
with a full window and sends the next ``chat.user.talk`` whenever a response arrives
(closed loop, saturating), or, with ``rate`` set, on a fixed schedule spread evenly over
the senders (open loop; a send due while the window is full is counted as
``window_full`` and skipped). Each request carries a ``client_msg_id`` (as the SDK sends
it for idempotent resend) and a ~100-byte text body.

Time is split into a warm-up, the measured window of ``duration`` seconds and a drain:

- throughput counts the successful responses *received* inside the measured window;
- latencies are taken for requests *sent* inside it: send→response on the sender's
  connection, send→push on the receiver's (matched by ``client_msg_id``);
- after the window nothing new is sent; the run waits (at most ``drain_timeout``) for
  every response and for the push of every acknowledged message, then counts pushes
  received against messages acknowledged over the whole run.

All clients run in this one process (anyio on uvloop); each connection has one receive
loop that takes whole batches of packets per wake-up.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench.client import close_all, open_clients
from bench.procs import CpuMeter
from bench.stats import Summary, summarize
from bench.targets import Target, cirno_token
from data_plane.transport.ws import WsConnection
from data_plane.wire import Command, Flag, LogicPacket, MessageType, decode_packet, pb

USER_TALK = str(Command.CHAT_USER_TALK)
FIRST_SEQUENCE = 2  # 1 was the login


@dataclass(frozen=True)
class ChatConfig:
    """Shape of one run. ``rate`` is total messages/s (None: as fast as the window allows)."""

    pairs: int = 50
    window: int = 32
    duration: float = 10.0
    warmup: float = 2.0
    body_size: int = 100
    rate: float | None = None
    drain_timeout: float = 10.0
    login_concurrency: int = 25


@dataclass
class ChatResult:
    """What one run measured."""

    target: str
    mode: str
    config: ChatConfig
    throughput: float
    """Successful responses per second inside the measured window (durable msg/s)."""
    push_rate: float
    response: Summary
    push: Summary
    sent: int
    acked: int
    failed: int
    pushes: int
    missing_pushes: int
    unexpected_pushes: int
    window_full: int
    failed_statuses: dict[int, int] = field(default_factory=dict)
    cpu_percent: dict[str, float] = field(default_factory=dict)
    """Share of one core per process over the measured window (see bench.procs)."""
    background_before: float | None = None
    """Machine load (% of one core) just before the run, our servers idle."""
    attempts_others: list[float] = field(default_factory=list)
    """Others' CPU (% of one core) in each attempt; this result is the least disturbed."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        out["config"] = asdict(self.config)
        out["response"] = self.response.as_dict()
        out["push"] = self.push.as_dict()
        out["cpu_us_per_message"] = self.cpu_us_per_message()
        out["throughput"] = round(self.throughput, 1)
        out["push_rate"] = round(self.push_rate, 1)
        return out

    def cpu_us_per_message(self) -> dict[str, float]:
        """CPU microseconds each process spent per acknowledged message in the window."""
        if self.throughput <= 0:
            return {}
        return {
            name: round(share / 100 / self.throughput * 1e6, 1)
            for name, share in self.cpu_percent.items()
        }


class _Run:
    """State shared by every sender and receiver of one run."""

    def __init__(self, config: ChatConfig, start: float) -> None:
        self.config = config
        self.window_start = start + config.warmup
        self.window_end = self.window_start + config.duration
        self.response_latencies: list[float] = []
        self.push_latencies: list[float] = []
        self.awaiting_push: dict[str, float] = {}
        """client_msg_id → send time, for every message whose push has not arrived."""
        self.in_flight = 0
        self.sent = 0
        self.acked = 0
        self.acked_in_window = 0
        self.failed: Counter[int] = Counter()
        self.pushes = 0
        self.pushes_in_window = 0
        self.unexpected_pushes = 0
        self.window_full = 0
        self._drained: anyio.Event | None = None

    def measured(self, sent_at: float) -> bool:
        return self.window_start <= sent_at < self.window_end

    def on_push(self, client_msg_id: str, now: float) -> None:
        sent_at = self.awaiting_push.pop(client_msg_id, None)
        if sent_at is None:
            self.unexpected_pushes += 1
            return
        self.pushes += 1
        if self.window_start <= now < self.window_end:
            self.pushes_in_window += 1
        if self.measured(sent_at):
            self.push_latencies.append(now - sent_at)

    def drained(self) -> bool:
        return self.in_flight == 0 and not self.awaiting_push

    async def wait_drained(self) -> None:
        """Wait until every response and every expected push has arrived."""
        if not self.drained():
            self._drained = anyio.Event()
            await self._drained.wait()

    def check_drained(self) -> None:
        """Wake :meth:`wait_drained` once drained (called after each received batch)."""
        if self._drained is not None and self.drained():
            self._drained.set()


class _Sender:
    """One sender connection: its window of requests and its receive loop."""

    def __init__(self, run: _Run, conn: WsConnection, name: str, receiver: str) -> None:
        self.run = run
        self.conn = conn
        self.name = name
        self.receiver = receiver
        self.sequence = FIRST_SEQUENCE - 1
        self.pending: dict[int, float] = {}
        filler = max(0, run.config.body_size - len(name) - 12)
        self.padding = "x" * filler

    def send_one(self) -> None:
        self.sequence += 1
        client_msg_id = f"{self.name}.{self.sequence}"
        req = pb.MessageReq(
            type=MessageType.TEXT,
            body=f"{client_msg_id}:{self.padding}",
            client_msg_id=client_msg_id,
        )
        packet = LogicPacket.request(USER_TALK, req, sequence=self.sequence, dest=self.receiver)
        data = packet.encode()
        now = time.perf_counter()
        self.pending[self.sequence] = now
        self.run.awaiting_push[client_msg_id] = now
        self.run.in_flight += 1
        self.run.sent += 1
        self.conn.send(data)

    async def receive_loop(self) -> None:
        run = self.run
        refill = run.config.rate is None
        if refill:
            for _ in range(run.config.window):
                self.send_one()
        while True:
            batch = await self.conn.receive()
            now = time.perf_counter()
            for raw in batch:
                packet = decode_packet(raw)
                if not isinstance(packet, LogicPacket) or packet.flag != Flag.RESPONSE:
                    continue
                sent_at = self.pending.pop(packet.sequence, None)
                if sent_at is None:
                    continue
                run.in_flight -= 1
                if packet.status == 0:
                    run.acked += 1
                    if run.window_start <= now < run.window_end:
                        run.acked_in_window += 1
                    if run.measured(sent_at):
                        run.response_latencies.append(now - sent_at)
                else:
                    run.failed[packet.status] += 1
                    run.awaiting_push.pop(f"{self.name}.{packet.sequence}", None)
                if refill and now < run.window_end:
                    self.send_one()
            run.check_drained()

    async def pace(self, rate: float, offset: float) -> None:
        """Send ``rate`` messages/s on a fixed schedule until the window ends."""
        run = self.run
        interval = 1.0 / rate
        due = time.perf_counter() + offset
        while True:
            now = time.perf_counter()
            if now >= run.window_end:
                return
            if due > now:
                await anyio.sleep(due - now)
                continue
            while due <= now:
                if len(self.pending) < run.config.window:
                    self.send_one()
                else:
                    run.window_full += 1
                due += interval


async def _receiver_loop(run: _Run, conn: WsConnection) -> None:
    while True:
        batch = await conn.receive()
        now = time.perf_counter()
        for raw in batch:
            packet = decode_packet(raw)
            if (
                isinstance(packet, LogicPacket)
                and packet.flag == Flag.PUSH
                and packet.command == USER_TALK
            ):
                run.on_push(packet.parse_body(pb.MessagePush).client_msg_id, now)
        run.check_drained()


async def run_chat(target: Target, config: ChatConfig) -> ChatResult:
    """Log the pairs in, run warm-up + measured window + drain, and summarize."""
    run_id = uuid.uuid4().hex[:6]
    senders_names = [f"{run_id}s{i}" for i in range(config.pairs)]
    receiver_names = [f"{run_id}r{i}" for i in range(config.pairs)]
    tokens = [target.token_for(name) for name in [*senders_names, *receiver_names]]
    conns = await open_clients(target.ws_url, tokens, concurrency=config.login_concurrency)
    meter = CpuMeter(target.processes)
    try:
        run = _Run(config, time.perf_counter())
        senders = [
            _Sender(run, conns[i], senders_names[i], receiver_names[i]) for i in range(config.pairs)
        ]
        async with anyio.create_task_group() as tg:
            for sender in senders:
                tg.start_soon(sender.receive_loop)
            for conn in conns[config.pairs :]:
                tg.start_soon(_receiver_loop, run, conn)
            if config.rate is not None:
                per_sender = config.rate / config.pairs
                for index, sender in enumerate(senders):
                    tg.start_soon(sender.pace, per_sender, index / config.rate)
            await anyio.sleep(run.window_start - time.perf_counter())
            meter.start(time.perf_counter())
            await anyio.sleep(run.window_end - time.perf_counter())
            cpu = meter.stop(time.perf_counter())
            with anyio.move_on_after(config.drain_timeout):
                await run.wait_drained()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await close_all(conns)
    return ChatResult(
        target=target.name,
        mode="saturation" if config.rate is None else f"rate {config.rate:.0f}/s",
        config=config,
        throughput=run.acked_in_window / config.duration,
        push_rate=run.pushes_in_window / config.duration,
        response=summarize(run.response_latencies),
        push=summarize(run.push_latencies),
        sent=run.sent,
        acked=run.acked,
        failed=sum(run.failed.values()),
        pushes=run.pushes,
        missing_pushes=_acked_without_push(run, senders),
        unexpected_pushes=run.unexpected_pushes,
        window_full=run.window_full,
        failed_statuses=dict(run.failed),
        cpu_percent=cpu,
    )


def _acked_without_push(run: _Run, senders: list[_Sender]) -> int:
    """Messages acknowledged (or failed) whose push never came: those still awaited
    minus those whose response is still outstanding too."""
    unanswered = {f"{s.name}.{seq}" for s in senders for seq in s.pending}
    return sum(1 for client_msg_id in run.awaiting_push if client_msg_id not in unanswered)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def format_table(results: list[ChatResult]) -> str:
    """One line per run: throughput, latencies (ms) and delivery counts."""
    head = (
        f"{'target':<8} {'mode':<12} {'msg/s':>9} {'resp p50':>9} {'p99':>7} {'max':>7} "
        f"{'push p50':>9} {'p99':>7} {'max':>7} {'acked':>8} {'pushed':>8} {'failed':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.target:<8} {r.mode:<12} {r.throughput:>9.0f} "
            f"{_fmt(r.response.p50_ms):>9} {_fmt(r.response.p99_ms):>7} "
            f"{_fmt(r.response.max_ms):>7} {_fmt(r.push.p50_ms):>9} {_fmt(r.push.p99_ms):>7} "
            f"{_fmt(r.push.max_ms):>7} {r.acked:>8} {r.pushes:>8} {r.failed:>6}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run against an already running server: ``python -m bench.chat_bench --url ws://…``.

    Tokens are minted for the benchmark tenant (see :mod:`bench.targets`), which must
    exist on that server; ``python -m bench.run`` starts servers itself.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.chat_bench")
    parser.add_argument("--url", required=True)
    parser.add_argument("--relay", action="store_true", help="the server is bench.relay")
    parser.add_argument("--pairs", type=int, default=ChatConfig.pairs)
    parser.add_argument("--window", type=int, default=ChatConfig.window)
    parser.add_argument("--duration", type=float, default=ChatConfig.duration)
    parser.add_argument("--warmup", type=float, default=ChatConfig.warmup)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    target = Target(
        name="relay" if args.relay else "external",
        description=args.url,
        ws_url=args.url,
        token_for=(lambda account: account) if args.relay else cirno_token,
        durable=not args.relay,
    )
    config = ChatConfig(
        pairs=args.pairs,
        window=args.window,
        duration=args.duration,
        warmup=args.warmup,
        rate=args.rate,
    )
    result = anyio.run(
        run_chat, target, config, backend="asyncio", backend_options={"use_uvloop": True}
    )
    print(format_table([result]))
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_dict(), indent=2))


if __name__ == "__main__":
    main()
