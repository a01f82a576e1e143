"""``cirno verify``: an end-to-end integrity check of a running cluster, through the SDK.

Theory of operation
-------------------
U users of one tenant (tokens minted locally from the tenant's secret) log in through
the SDK, spread over the given gateways (user *i* starts on gateway *i mod N* and the
client rotates through the list when a connection fails or is lost; with a control
plane URL every client asks ``GET /v1/route`` instead). The first user creates G groups
holding every user. Then every user sends, one message at a time at a bounded rate, to
a random other user or to a random group, until the duration or the message budget is
used up. Every body is a tag (``sender#n``) that names the send, so a delivery is
matched to its send whichever way it came (live push or offline sync).

Recorded: each send's fate -- acknowledged (the :class:`~cirno_sdk.Sent` receipt:
message id, client message id, group sequence) or unconfirmed (failed or still pending
at the end: it may or may not be stored) -- and, per user, every message
``messages()`` yields, in order. A fault (a coroutine function) can run ``fault_after``
seconds into the traffic.

After the traffic: a quiet period, then every client runs a final offline sync. Then:

- **lost**: an acknowledged message missing at one of its intended receivers (1:1: the
  receiver; group: every member but the sender);
- **duplicated**: a message delivered twice to one receiver, or one send stored under
  two message ids (a resend that was not idempotent);
- **out of order**: 1:1, a sender's acknowledged messages reaching a receiver in
  another order than they were sent (one send in flight per user, so send order is
  well defined; message ids are only time-ordered per logic node); group, a member
  seeing a group's messages in an order that disagrees with the group sequence the
  server assigned (from the send receipts and the pushes);
- **unexpected**: a delivery to someone who was not a receiver, or of a message that was
  never sent. Deliveries of unconfirmed sends are allowed (the response was lost, the
  message was stored): they are counted, not blamed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cirno.chat import mint_token
from cirno_sdk import (
    CirnoError,
    Client,
    ClientOptions,
    Direction,
    LoginRefused,
    Message,
    Reconnected,
    Target,
    route_resolver,
)

log = logging.getLogger("cirno.verify")

MAX_PROBLEMS = 50
"""Problem descriptions kept in a report (the counts are always complete)."""


def harness_options() -> ClientOptions:
    """SDK options for the harness: quick resends and reconnects, bounded deadlines."""
    return ClientOptions(
        response_timeout=3.0,
        send_deadline=30.0,
        request_deadline=30.0,
        connect_timeout=3.0,
        first_connect_deadline=20.0,
        backoff_initial=0.1,
        backoff_max=1.0,
        gap_wait=1.0,
        ack_interval=300,
    )


@dataclass(frozen=True, slots=True)
class IntegrityConfig:
    """What to run. Traffic stops after ``duration`` seconds or ``messages`` sends in
    total, whichever comes first (10 s when neither is given). ``rate`` is per user
    (messages per second, one in flight at a time); ``group_share`` the fraction of
    sends that go to a group. ``control_url`` makes clients ask ``GET /v1/route`` where
    to connect instead of walking ``gateway_urls``."""

    gateway_urls: tuple[str, ...]
    tenant: str
    secret: str
    users: int = 20
    groups: int = 2
    duration: float | None = None
    messages: int | None = None
    rate: float = 2.0
    group_share: float = 0.25
    quiet: float = 3.0
    login_wait: float = 20.0
    final_sync_timeout: float = 60.0
    account_prefix: str = ""
    device: str = "verify"
    seed: int | None = None
    control_url: str | None = None
    options: ClientOptions = field(default_factory=harness_options)

    def __post_init__(self) -> None:
        if not self.gateway_urls and not self.control_url:
            raise ValueError("give at least one gateway URL (or a control plane URL)")
        if self.users < 2 or self.groups < 0 or self.rate <= 0:
            raise ValueError("need at least 2 users, groups >= 0 and a positive rate")
        if not 0 <= self.group_share <= 1:
            raise ValueError("group_share must be within 0..1")


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """The outcome. ``delivered`` and ``expected`` count (message, receiver) pairs of
    acknowledged messages; ``ok`` when nothing was lost, duplicated, out of order or
    unexpected."""

    users: int
    groups: int
    seconds: float
    attempted: int
    acknowledged: int
    acknowledged_group: int
    unconfirmed: int
    unconfirmed_delivered: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    out_of_order: int
    unexpected: int
    echoes: int
    reconnects: int
    slowest_send: float
    sync_failures: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every check passed (a client whose final sync failed makes the check
        incomplete, so that fails too)."""
        return (
            not (self.lost or self.duplicated or self.out_of_order or self.unexpected)
            and not self.sync_failures
        )

    @property
    def line(self) -> str:
        """``N acknowledged, N delivered, N lost, N duplicated, N out of order``."""
        return (
            f"{self.acknowledged} acknowledged, {self.delivered} delivered, {self.lost} lost, "
            f"{self.duplicated} duplicated, {self.out_of_order} out of order"
        )

    def render(self) -> str:
        """Counts, problems (if any), and :attr:`line` last."""
        one_to_one = self.acknowledged - self.acknowledged_group
        lines = [
            f"users {self.users}, groups {self.groups}, {self.seconds:.1f} s of traffic",
            f"sends: {self.attempted} attempted, {self.acknowledged} acknowledged "
            f"({one_to_one} 1:1, {self.acknowledged_group} group), {self.unconfirmed} "
            f"unconfirmed ({self.unconfirmed_delivered} of them delivered anyway)",
            f"deliveries: {self.expected} expected, {self.delivered} delivered, "
            f"{self.unexpected} unexpected; {self.echoes} own messages synced back, "
            f"{self.reconnects} reconnects; slowest send {self.slowest_send:.1f} s; "
            f"{self.sync_failures} final syncs failed",
            *(f"problem: {p}" for p in self.problems),
            self.line,
        ]
        return "\n".join(lines)


@dataclass(slots=True)
class _Send:
    tag: str
    sender: str
    to: str
    group: bool
    index: int
    state: str = "pending"
    message_id: int = 0
    seq: int = 0
    error: str = ""
    latency: float = 0.0


@dataclass(slots=True)
class _User:
    account: str
    target: Target
    client: Client | None = None
    deliveries: list[Message] = field(default_factory=list)
    sends: list[_Send] = field(default_factory=list)
    reconnects: int = 0


Fault = Callable[[], Awaitable[None]]


async def run_integrity(
    config: IntegrityConfig, *, fault: Fault | None = None, fault_after: float = 0.0
) -> IntegrityReport:
    """Run the traffic (with ``fault`` awaited ``fault_after`` seconds into it), the
    quiet period and the final sync, and check what arrived. Raises
    :class:`~cirno_sdk.CirnoError` when the users cannot log in at the start."""
    rng = random.Random(config.seed)
    prefix = config.account_prefix or f"v{uuid.uuid4().hex[:6]}"
    users = [_User(f"{prefix}-u{i:02d}", _target(config, i, prefix)) for i in range(config.users)]
    problems: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_close_all, users)
        await asyncio.gather(*(_connect(user, config) for user in users))
        log.info("%d users logged in", len(users))
        first = users[0].client
        assert first is not None
        groups = [
            await first.create_group(f"verify-{n}", [u.account for u in users[1:]])
            for n in range(config.groups)
        ]
        async with asyncio.TaskGroup() as readers:
            for user in users:
                readers.create_task(_consume(user))
            seconds = await _traffic(users, groups, config, rng, fault, fault_after)
            log.info("traffic done after %.1f s; quiet for %.1f s", seconds, config.quiet)
            await asyncio.sleep(config.quiet)
            results = await asyncio.gather(
                *(_final_sync(u, config.final_sync_timeout) for u in users),
                return_exceptions=True,
            )
            problems.extend(
                f"final sync of {u.account} failed: {r!r}"
                for u, r in zip(users, results, strict=True)
                if isinstance(r, BaseException)
            )
            log.info("final syncs done")
            await asyncio.sleep(0.2)  # let the readers take what the syncs delivered
            await _close_all(users)
    failures = sum(1 for r in results if isinstance(r, BaseException))
    return _check(users, groups, seconds, problems, sync_failures=failures)


def _target(config: IntegrityConfig, index: int, prefix: str) -> Target:
    if config.control_url:
        token = mint_token(config.tenant, f"{prefix}-u{index:02d}", config.secret)
        return route_resolver(config.control_url, token, platform="verify")
    urls = config.gateway_urls
    start = index % len(urls)
    return [*urls[start:], *urls[:start]]


async def _connect(user: _User, config: IntegrityConfig) -> None:
    """Log in; a refused login is retried for ``login_wait`` seconds (gateways learn a
    new tenant from the control plane within a few seconds)."""
    token = mint_token(config.tenant, user.account, config.secret)
    deadline = time.monotonic() + config.login_wait
    while True:
        client = Client(user.target, token, device=config.device, options=config.options)
        try:
            await client.connect()
        except LoginRefused:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
            continue
        user.client = client
        return


async def _close_all(users: list[_User]) -> None:
    for user in users:
        if user.client is not None:
            await user.client.aclose()


async def _consume(user: _User) -> None:
    client = user.client
    assert client is not None

    async def events() -> None:
        async for event in client.events():
            if isinstance(event, Reconnected):
                user.reconnects += 1

    async with asyncio.TaskGroup() as tg:
        tg.create_task(events())
        async for message in client.messages():
            user.deliveries.append(message)


async def _final_sync(user: _User, timeout: float) -> None:
    assert user.client is not None
    await user.client.sync(timeout=timeout)


async def _traffic(
    users: list[_User],
    groups: list[str],
    config: IntegrityConfig,
    rng: random.Random,
    fault: Fault | None,
    fault_after: float,
) -> float:
    """Send until the duration or budget is used up; returns the seconds it took."""
    duration = config.duration
    if duration is None and config.messages is None:
        duration = 10.0
    budget = [config.messages if config.messages is not None else -1]
    stop = asyncio.Event()
    started = time.monotonic()

    async def stop_later() -> None:
        if duration is not None:
            await asyncio.sleep(duration)
            stop.set()

    async def inject() -> None:
        assert fault is not None
        await asyncio.sleep(fault_after)
        log.info("injecting the fault")
        await fault()

    async with asyncio.TaskGroup() as tg:
        timer = tg.create_task(stop_later())
        if fault is not None:
            tg.create_task(inject())
        async with asyncio.TaskGroup() as senders:
            others = [u.account for u in users]
            for user in users:
                seed = rng.random()
                senders.create_task(_send_loop(user, others, groups, config, seed, stop, budget))
        timer.cancel()
    return time.monotonic() - started


async def _send_loop(
    user: _User,
    accounts: list[str],
    groups: list[str],
    config: IntegrityConfig,
    seed: float,
    stop: asyncio.Event,
    budget: list[int],
) -> None:
    """One send at a time, every ``1 / rate`` seconds (never in bursts)."""
    client = user.client
    assert client is not None
    rng = random.Random(seed)
    others = [a for a in accounts if a != user.account]
    interval = 1.0 / config.rate
    loop = asyncio.get_running_loop()
    next_at = loop.time() + rng.random() * interval
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, next_at - loop.time())):
                await stop.wait()
        if stop.is_set() or budget[0] == 0:
            break
        if budget[0] > 0:
            budget[0] -= 1
            if budget[0] == 0:
                stop.set()
        to_group = bool(groups) and rng.random() < config.group_share
        record = _Send(
            tag=f"{user.account}#{len(user.sends)}",
            sender=user.account,
            to=rng.choice(groups) if to_group else rng.choice(others),
            group=to_group,
            index=len(user.sends),
        )
        user.sends.append(record)
        began = loop.time()
        try:
            sent = await client.send(record.to, record.tag, group=record.group)
        except CirnoError as exc:
            record.state, record.error = "failed", repr(exc)
        else:
            record.state, record.message_id, record.seq = "acked", sent.message_id, sent.seq
        record.latency = loop.time() - began
        next_at = max(next_at + interval, loop.time())


# -- checking ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unexpected: int = 0
    unconfirmed_delivered: int = 0
    echoes: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def _check(
    users: list[_User],
    groups: list[str],
    seconds: float,
    problems: list[str],
    *,
    sync_failures: int = 0,
) -> IntegrityReport:
    tally = _Tally(problems=list(problems))
    sends = {s.tag: s for u in users for s in u.sends}
    members = [u.account for u in users]
    # where[receiver][tag] = positions (in the receiver's delivery order) of that send
    where: dict[str, dict[str, list[int]]] = {}
    ids: defaultdict[str, set[int]] = defaultdict(set)
    for user in users:
        mine: defaultdict[str, list[int]] = defaultdict(list)
        for position, message in enumerate(user.deliveries):
            if message.direction == Direction.SENT:
                tally.echoes += 1
                continue
            send = sends.get(message.body)
            if send is None:
                tally.unexpected += 1
                tally.problem(f"{user.account} got a message nobody sent: {message!r}")
                continue
            ids[send.tag].add(message.message_id)
            mine[send.tag].append(position)
        where[user.account] = dict(mine)
    _check_deliveries(sends, members, where, ids, tally)
    _check_pair_order(users, where, tally)
    _check_group_order(users, groups, sends, tally)
    acked = [s for s in sends.values() if s.state == "acked"]
    return IntegrityReport(
        users=len(users),
        groups=len(groups),
        seconds=seconds,
        attempted=len(sends),
        acknowledged=len(acked),
        acknowledged_group=sum(1 for s in acked if s.group),
        unconfirmed=len(sends) - len(acked),
        unconfirmed_delivered=tally.unconfirmed_delivered,
        expected=tally.expected,
        delivered=tally.delivered,
        lost=tally.lost,
        duplicated=tally.duplicated,
        out_of_order=tally.out_of_order,
        unexpected=tally.unexpected,
        echoes=tally.echoes,
        reconnects=sum(u.reconnects for u in users),
        slowest_send=max((s.latency for s in sends.values()), default=0.0),
        sync_failures=sync_failures,
        problems=tuple(tally.problems),
    )


def _check_deliveries(
    sends: dict[str, _Send],
    members: list[str],
    where: dict[str, dict[str, list[int]]],
    ids: dict[str, set[int]],
    tally: _Tally,
) -> None:
    """Exactly once to each intended receiver; stored once; nobody else."""
    for tag, send in sends.items():
        receivers = [m for m in members if m != send.sender] if send.group else [send.to]
        stored = set(ids.get(tag, ()))
        if send.state == "acked":
            stored.add(send.message_id)
        if len(stored) > 1:
            tally.duplicated += len(stored) - 1
            tally.problem(f"{tag} was stored under {len(stored)} message ids: {sorted(stored)}")
        got_any = False
        for receiver in receivers:
            count = len(where[receiver].get(tag, ()))
            got_any = got_any or count > 0
            if count > 1:
                tally.duplicated += count - 1
                tally.problem(f"{tag} reached {receiver} {count} times")
            if send.state != "acked":
                continue
            tally.expected += 1
            if count:
                tally.delivered += 1
            else:
                tally.lost += 1
                tally.problem(f"{tag} (id {send.message_id}) never reached {receiver}")
        if got_any and send.state != "acked":
            tally.unconfirmed_delivered += 1
        for receiver, seen in where.items():
            if receiver not in receivers and tag in seen:
                tally.unexpected += 1
                tally.problem(f"{tag} reached {receiver}, who was not a receiver")


def _check_pair_order(
    users: list[_User], where: dict[str, dict[str, list[int]]], tally: _Tally
) -> None:
    """1:1: each sender's acknowledged messages reach each receiver in send order."""
    receiver_of = {user.account: user for user in users}
    for user in users:
        by_receiver: defaultdict[str, list[_Send]] = defaultdict(list)
        for send in user.sends:
            if send.state == "acked" and not send.group:
                by_receiver[send.to].append(send)
        for receiver, sent in by_receiver.items():
            earliest = None  # the first delivery of a message sent after this one
            for send in reversed(sent):
                positions = where[receiver].get(send.tag)
                if not positions:
                    continue
                if earliest is not None and positions[0] > earliest:
                    tally.out_of_order += 1
                    message = receiver_of[receiver].deliveries[positions[0]]
                    tally.problem(
                        f"{send.tag} (by {_how(message)}) reached {receiver} after a later "
                        "message of the same sender"
                    )
                earliest = positions[0] if earliest is None else min(earliest, positions[0])


def _check_group_order(
    users: list[_User], groups: list[str], sends: dict[str, _Send], tally: _Tally
) -> None:
    """Groups: one sequence per group (receipts and pushes agree), and every member sees
    the group's messages in that sequence."""
    seq_of: dict[int, int] = {}
    group_of: dict[int, str] = {}
    for send in sends.values():
        if send.group and send.state == "acked" and send.seq:
            seq_of[send.message_id] = send.seq
    for user in users:
        for message in user.deliveries:
            if message.group:
                group_of[message.message_id] = message.group
    for send in sends.values():
        if send.group and send.state == "acked":
            group_of[send.message_id] = send.to
    for user in users:
        for message in user.deliveries:
            # A push (it carries our client_msg_id) has the server's sequence; a synced
            # message's seq is the SDK's inference, so it is not evidence.
            if message.group and message.client_msg_id and message.seq:
                known = seq_of.setdefault(message.message_id, message.seq)
                if known != message.seq:
                    tally.out_of_order += 1
                    tally.problem(f"message {message.message_id} has seq {known} and {message.seq}")
    for group in groups:
        owners: Counter[int] = Counter(
            seq for mid, seq in seq_of.items() if group_of.get(mid) == group
        )
        for seq, count in owners.items():
            if count > 1:
                tally.out_of_order += count - 1
                tally.problem(f"group {group}: {count} messages share seq {seq}")
        for user in users:
            latest, before = 0, ""
            for message in user.deliveries:
                if message.group != group or message.direction == Direction.SENT:
                    continue
                place = seq_of.get(message.message_id)
                if place is None:
                    continue
                now = f"seq {place} ({message.body}, by {_how(message)})"
                if place < latest:
                    tally.out_of_order += 1
                    tally.problem(f"{user.account} saw {now} of group {group} after {before}")
                if place > latest:
                    latest, before = place, now


def _how(message: Message) -> str:
    """How a message arrived: a push carries our client message id, a synced one not."""
    return "push" if message.client_msg_id else "sync"


# -- command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cirno verify``."""
    parser.add_argument(
        "--url",
        action="append",
        dest="urls",
        metavar="URL",
        help="a gateway (ws://host:port/ or tcp://host:port); repeat for several "
        "(default ws://127.0.0.1:8000/)",
    )
    parser.add_argument("--route", metavar="CONTROL_URL", help="ask GET /v1/route instead")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--secret", required=True, help="the tenant's secret (mints tokens)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--duration", type=float, help="seconds of traffic (default 10)")
    parser.add_argument("--messages", type=int, help="stop after this many sends in total")
    parser.add_argument("--rate", type=float, default=2.0, help="messages/s per user")
    parser.add_argument("--group-share", type=float, default=0.25)
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds before the final sync")
    parser.add_argument("--seed", type=int)


def main(args: argparse.Namespace) -> int:
    """Run ``cirno verify``: 0 when nothing was lost, duplicated or out of order."""
    try:
        config = IntegrityConfig(
            gateway_urls=tuple(args.urls or ([] if args.route else ["ws://127.0.0.1:8000/"])),
            tenant=args.tenant,
            secret=args.secret,
            users=args.users,
            groups=args.groups,
            duration=args.duration,
            messages=args.messages,
            rate=args.rate,
            group_share=args.group_share,
            quiet=args.quiet,
            seed=args.seed,
            control_url=args.route,
        )
    except ValueError as exc:
        print(f"cirno verify: {exc}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(run_integrity(config))
    except CirnoError as exc:
        print(f"cirno verify: could not start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(report.render(), flush=True)
    return 0 if report.ok else 1
