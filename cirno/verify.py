"""``cirno verify``: an end-to-end integrity check of a running cluster.

Theory of operation
-------------------
U users of one tenant (tokens minted locally from the tenant's secret) log in through
the SDK, spread over the given gateways (user *i* starts on gateway *i mod N* and the
client rotates through the list when a connection fails or is lost; with a control
plane URL every client asks ``GET /v1/route`` instead). The first user creates G groups
holding every user. Then every user sends, one message at a time at a bounded rate, to
a random other user or to a random group, until the duration or the message budget is
used up. Every body is a tag (``sender#n``) that names the send, so a delivery is
matched to its send whichever way it came (live push or offline sync). The SDK resends
an unanswered send with the same ``client_msg_id`` after its response timeout.

**Receiver kinds** (``receivers``): ``sdk`` as above; ``kim`` -- one kim-style receiver
(:mod:`cirno.kim_receiver`: acks the newest push, syncs after its ack, fills no gaps)
per SDK user, its partner, and every send goes 1:1 to the partner (no groups);
``both`` -- the SDK traffic above, plus kim partners receiving ``kim_share`` of the
sends. Each kind is checked on its own and reported on its own line.

Recorded: each send's fate -- acknowledged (the :class:`~cirno_sdk.Sent` receipt:
message id, client message id, group sequence) or unconfirmed (failed or still pending
at the end: it may or may not be stored) -- and, per receiver, every message it took,
in order, with the time it arrived. Faults (coroutine functions) run one after another
during the traffic, ``fault_gap`` seconds apart; the traffic goes on until the last has
ended and ``fault_gap`` more seconds have passed.

After the traffic: a quiet period, then every client runs a final offline sync. Then
(:mod:`cirno.verify_check`):

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
  message was stored): they are counted, not blamed;
- per fault, the time to recover (until every sender had an acknowledged send, and
  every receiver a message, after the fault ended) and the longest delay a message sent
  during it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from cirno.chat import mint_token
from cirno.kim_receiver import KimReceiver
from cirno.verify_check import (
    FaultResult,
    IntegrityReport,
    _check,
    _Send,
    _User,
    fault_outcomes,
)
from cirno_sdk import (
    CirnoError,
    Client,
    ClientOptions,
    LoginRefused,
    Reconnected,
    Target,
    route_resolver,
)

__all__ = [
    "RECEIVER_KINDS",
    "Fault",
    "FaultResult",
    "FaultStep",
    "IntegrityConfig",
    "IntegrityReport",
    "_Send",
    "_User",
    "_check",
    "harness_options",
    "run_integrity",
]

log = logging.getLogger("cirno.verify")

RECEIVER_KINDS = ("sdk", "kim", "both")


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
    to connect instead of walking ``gateway_urls``. ``receivers`` and ``kim_share``:
    see the module docstring; ``kim_ack_interval`` is the kim receivers' ack period."""

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
    receivers: str = "sdk"
    kim_share: float = 0.5
    kim_ack_interval: float = 3.0
    fault_gap: float = 5.0

    def __post_init__(self) -> None:
        if self.receivers not in RECEIVER_KINDS:
            raise ValueError(f"receivers must be one of {', '.join(RECEIVER_KINDS)}")
        if self.receivers != "sdk" and not self.gateway_urls:
            raise ValueError("kim-style receivers need gateway URLs (they do not ask /v1/route)")
        if not self.gateway_urls and not self.control_url:
            raise ValueError("give at least one gateway URL (or a control plane URL)")
        if self.users < 2 or self.groups < 0 or self.rate <= 0:
            raise ValueError("need at least 2 users, groups >= 0 and a positive rate")
        if not 0 <= self.group_share <= 1:
            raise ValueError("group_share must be within 0..1")


Fault = Callable[[], Awaitable[None]]
FaultStep = tuple[str, Callable[[], Awaitable[dict[str, object]]]]
"""A named fault: a coroutine function that injects it, waits until the faulty part is
back, and returns its evidence (see :mod:`cirno.verify_faults`)."""


async def run_integrity(
    config: IntegrityConfig,
    *,
    fault: Fault | None = None,
    fault_after: float = 0.0,
    faults: Sequence[FaultStep] = (),
) -> IntegrityReport:
    """Run the traffic (with ``fault`` awaited ``fault_after`` seconds into it, and
    ``faults`` one after another), the quiet period and the final sync, and check what
    arrived. Raises :class:`~cirno_sdk.CirnoError` when the users cannot log in at the
    start. With kim-style receivers beside SDK ones the kim report is ``report.kim``;
    with kim-style receivers only, the report is theirs (``kind`` "kim")."""
    rng = random.Random(config.seed)
    prefix = config.account_prefix or f"v{uuid.uuid4().hex[:6]}"
    users = [_User(f"{prefix}-u{i:02d}", _target(config, i, prefix)) for i in range(config.users)]
    kims = _kim_receivers(config, prefix)
    groups_wanted = 0 if config.receivers == "kim" else config.groups
    problems: list[str] = []
    done: list[FaultResult] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_close_all, users)
        await asyncio.gather(*(_connect(user, config) for user in users))
        log.info("%d users logged in", len(users))
        first = users[0].client
        assert first is not None
        groups = [
            await first.create_group(f"verify-{n}", [u.account for u in users[1:]])
            for n in range(groups_wanted)
        ]
        async with asyncio.TaskGroup() as readers:
            for user in users:
                readers.create_task(_consume(user))
            kim_tasks = [readers.create_task(kim.run()) for kim in kims]
            partners = [kim.account for kim in kims]
            plan = _Plan(fault, fault_after, list(faults), config.fault_gap, done)
            seconds = await _traffic(users, groups, partners, config, rng, plan)
            log.info("traffic done after %.1f s; quiet for %.1f s", seconds, config.quiet)
            await asyncio.sleep(config.quiet)
            finals = [_final_sync(u, config.final_sync_timeout) for u in users]
            finals += [kim.final_sync(config.final_sync_timeout) for kim in kims]
            results = await asyncio.gather(*finals, return_exceptions=True)
            names = [u.account for u in users] + [k.account for k in kims]
            problems.extend(
                f"final sync of {name} failed: {r!r}"
                for name, r in zip(names, results, strict=True)
                if isinstance(r, BaseException)
            )
            log.info("final syncs done")
            await asyncio.sleep(0.2)  # let the readers take what the syncs delivered
            loads = [_load_bodies(u, config.final_sync_timeout) for u in users]
            loaded = await asyncio.gather(*loads, return_exceptions=True)
            problems.extend(
                f"loading the message bodies of {user.account} failed: {r!r}"
                for user, r in zip(users, loaded, strict=True)
                if isinstance(r, BaseException)
            )
            for task in kim_tasks:
                task.cancel()
            await _close_all(users)
    return _reports(users, kims, groups, seconds, problems, results, done)


@dataclass(slots=True)
class _Plan:
    """The faults to inject during the traffic, and where their results go."""

    fault: Fault | None
    fault_after: float
    steps: list[FaultStep]
    gap: float
    done: list[FaultResult]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self.fault is not None:
            await asyncio.sleep(self.fault_after)
            log.info("injecting the fault")
            await self.fault()
        for name, inject in self.steps:
            await asyncio.sleep(self.gap)
            log.info("fault %s: injecting", name)
            started = loop.time()
            evidence = await inject()
            self.done.append(FaultResult(name, started, loop.time(), evidence))
            log.info("fault %s: over after %.1f s: %s", name, loop.time() - started, evidence)
        if self.steps:
            await asyncio.sleep(self.gap)  # traffic after the last fault shows recovery


def _kim_receivers(config: IntegrityConfig, prefix: str) -> list[KimReceiver]:
    if config.receivers == "sdk":
        return []
    urls = list(config.gateway_urls)
    kims = []
    for index in range(config.users):
        account = f"{prefix}-k{index:02d}"
        start = (index + 1) % len(urls)  # not the partner's gateway: pushes cross gateways
        kims.append(
            KimReceiver(
                account,
                [*urls[start:], *urls[:start]],
                mint_token(config.tenant, account, config.secret),
                ack_interval=config.kim_ack_interval,
            )
        )
    return kims


def _reports(
    users: list[_User],
    kims: list[KimReceiver],
    groups: list[str],
    seconds: float,
    problems: list[str],
    results: Sequence[object],
    done: list[FaultResult],
) -> IntegrityReport:
    """One report per receiver kind; faults measured over every receiver."""
    failed = [isinstance(r, BaseException) for r in results]
    kim_accounts = {k.account for k in kims}
    sdk_side = [replace(u, sends=[s for s in u.sends if s.to not in kim_accounts]) for u in users]
    kim_side = [
        _User(u.account, u.target, sends=[s for s in u.sends if s.to in kim_accounts])
        for u in users
    ] + [
        _User(k.account, [], deliveries=k.deliveries, arrivals=k.arrivals, reconnects=k.logins - 1)
        for k in kims
    ]
    receivers = users + kim_side[len(users) :]
    outcomes = fault_outcomes(users, receivers, done)
    sdk_problems = [p for p in problems if not any(k in p for k in kim_accounts)]
    kim_problems = [p for p in problems if any(k in p for k in kim_accounts)]
    kim_report = _check(
        kim_side, [], seconds, kim_problems, sync_failures=sum(failed[len(users) :]), kind="kim"
    )
    if kims and all(not u.sends for u in sdk_side):
        return replace(kim_report, faults=outcomes)
    sdk_report = _check(
        sdk_side, groups, seconds, sdk_problems, sync_failures=sum(failed[: len(users)])
    )
    return replace(sdk_report, kim=kim_report if kims else None, faults=outcomes)


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
        loop = asyncio.get_running_loop()
        async for message in client.messages():
            user.deliveries.append(message)
            user.arrivals.append(loop.time())


async def _final_sync(user: _User, timeout: float) -> None:
    assert user.client is not None
    await user.client.sync(timeout=timeout)


async def _load_bodies(user: _User, timeout: float) -> None:
    """Give the messages a lazy sync delivered without bodies their contents (the check
    matches messages by body). Duplicates stay where they are, so the check sees them."""
    client = user.client
    assert client is not None
    missing = [m for m in user.deliveries if not m.content_loaded]
    if not missing:
        return
    async with asyncio.timeout(timeout):
        loaded = {m.message_id: m for m in await client.load_contents(missing)}
    user.deliveries[:] = [loaded.get(m.message_id, m) for m in user.deliveries]


async def _traffic(
    users: list[_User],
    groups: list[str],
    partners: list[str],
    config: IntegrityConfig,
    rng: random.Random,
    plan: _Plan,
) -> float:
    """Send until the duration or budget is used up and the faults are over; returns
    the seconds it took."""
    duration = config.duration
    if duration is None and config.messages is None:
        duration = 10.0
    budget = [config.messages if config.messages is not None else -1]
    stop = asyncio.Event()
    started = time.monotonic()

    async def stop_later(faults: asyncio.Task[None]) -> None:
        if duration is not None:
            await asyncio.sleep(duration)
        await faults  # never stop in the middle of a fault, nor before its recovery shows
        if duration is not None or plan.steps:
            stop.set()

    async with asyncio.TaskGroup() as tg:
        faults = tg.create_task(plan.run())
        timer = tg.create_task(stop_later(faults))
        async with asyncio.TaskGroup() as senders:
            others = [u.account for u in users]
            for index, user in enumerate(users):
                seed = rng.random()
                partner = partners[index] if partners else None
                senders.create_task(
                    _send_loop(user, others, groups, partner, config, seed, stop, budget)
                )
        timer.cancel()
        faults.cancel()
    return time.monotonic() - started


async def _send_loop(
    user: _User,
    accounts: list[str],
    groups: list[str],
    partner: str | None,
    config: IntegrityConfig,
    seed: float,
    stop: asyncio.Event,
    budget: list[int],
) -> None:
    """One send at a time, every ``1 / rate`` seconds (never in bursts); to the kim
    partner (all of them with ``receivers="kim"``, else a ``kim_share``), else to a
    random group or other user."""
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
        to_kim = partner is not None and (
            config.receivers == "kim" or rng.random() < config.kim_share
        )
        to_group = not to_kim and bool(groups) and rng.random() < config.group_share
        if to_kim:
            assert partner is not None
            to = partner
        else:
            to = rng.choice(groups) if to_group else rng.choice(others)
        began = loop.time()
        record = _Send(
            tag=f"{user.account}#{len(user.sends)}",
            sender=user.account,
            to=to,
            group=to_group,
            index=len(user.sends),
            started=began,
        )
        user.sends.append(record)
        try:
            sent = await client.send(record.to, record.tag, group=record.group)
        except CirnoError as exc:
            record.state, record.error = "failed", repr(exc)
        else:
            record.state, record.message_id, record.seq = "acked", sent.message_id, sent.seq
        record.done_at = loop.time()
        record.latency = record.done_at - began
        next_at = max(next_at + interval, loop.time())
