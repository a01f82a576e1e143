"""The integrity check of ``cirno verify``: from what was sent and what each receiver
got, count what was lost, duplicated, out of order or unexpected.

Pure code, no I/O: :func:`_check` takes the send records and every receiver's deliveries
(in the order they were handed to the application, with the time each arrived) and
returns an :class:`IntegrityReport`. What each count means is stated in
:mod:`cirno.verify`'s docstring and on :class:`IntegrityReport`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from cirno_sdk import Client, Direction, Message, Target

MAX_PROBLEMS = 50
"""Problem descriptions kept in a report (the counts are always complete)."""


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
    kind: str = "sdk"
    longest_delay: float = 0.0
    kim: IntegrityReport | None = None
    faults: tuple[FaultResult, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every check passed (a client whose final sync failed makes the check
        incomplete, so that fails too), for the kim-style receivers as well."""
        return (
            not (self.lost or self.duplicated or self.out_of_order or self.unexpected)
            and not self.sync_failures
            and (self.kim is None or self.kim.ok)
        )

    @property
    def line(self) -> str:
        """``N acknowledged, N delivered, N lost, N duplicated, N out of order``."""
        return (
            f"{self.acknowledged} acknowledged, {self.delivered} delivered, {self.lost} lost, "
            f"{self.duplicated} duplicated, {self.out_of_order} out of order"
        )

    def render(self) -> str:
        """Counts, problems (if any), the faults, the kim-style receivers' line (when
        they ran beside SDK receivers), and :attr:`line` last."""
        lines = [f"{self.kind} receivers:", *self._counts()]
        if self.kim is not None:
            lines += ["kim receivers:", *self.kim._counts(), f"kim receivers: {self.kim.line}"]
        lines += [fault.render() for fault in self.faults]
        lines.append(self.line)
        return "\n".join(lines)

    def _counts(self) -> list[str]:
        one_to_one = self.acknowledged - self.acknowledged_group
        return [
            f"users {self.users}, groups {self.groups}, {self.seconds:.1f} s of traffic",
            f"sends: {self.attempted} attempted, {self.acknowledged} acknowledged "
            f"({one_to_one} 1:1, {self.acknowledged_group} group), {self.unconfirmed} "
            f"unconfirmed ({self.unconfirmed_delivered} of them delivered anyway)",
            f"deliveries: {self.expected} expected, {self.delivered} delivered, "
            f"{self.unexpected} unexpected; {self.echoes} own messages synced back, "
            f"{self.reconnects} reconnects; slowest send {self.slowest_send:.1f} s; "
            f"{self.sync_failures} final syncs failed; longest delay of a message "
            f"{self.longest_delay:.1f} s",
            *(f"problem: {p}" for p in self.problems),
        ]


@dataclass(frozen=True, slots=True)
class FaultResult:
    """One injected fault: when it started and ended (event-loop time), what showed it
    was real (pids, exit statuses, cut connections), and what the traffic saw:
    ``send_recovery`` -- after the fault ended, how long until every sender had an
    acknowledged send again; ``delivery_recovery`` -- until every receiver had a message
    again; ``longest_delay`` -- the longest send-to-arrival time of a message sent
    while the fault lasted or within ``DELAY_WINDOW`` seconds after (None: no data)."""

    name: str
    started: float
    ended: float
    evidence: dict[str, object]
    send_recovery: float | None = None
    delivery_recovery: float | None = None
    longest_delay: float | None = None

    def render(self) -> str:
        def seconds(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f} s"

        return (
            f"fault {self.name}: {self.ended - self.started:.1f} s, recovered: sends "
            f"{seconds(self.send_recovery)}, deliveries {seconds(self.delivery_recovery)}; "
            f"longest delay {seconds(self.longest_delay)}; {self.evidence}"
        )


DELAY_WINDOW = 10.0


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
    started: float = 0.0  # event-loop time the send began (0: unknown)
    done_at: float = 0.0  # ... and ended (acknowledged or failed)


@dataclass(slots=True)
class _User:
    account: str
    target: Target
    client: Client | None = None
    deliveries: list[Message] = field(default_factory=list)
    sends: list[_Send] = field(default_factory=list)
    reconnects: int = 0
    arrivals: list[float] = field(default_factory=list)  # event-loop time, per delivery


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
    kind: str = "sdk",
) -> IntegrityReport:
    """The report on ``users``' sends and deliveries (every user is a receiver; groups
    hold every user)."""
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
        kind=kind,
        longest_delay=max((delay for _, delay in _delays(users)), default=0.0),
    )


def _delays(users: list[_User]) -> list[tuple[float, float]]:
    """(send start, send-to-first-arrival) of every acknowledged message at each
    receiver, where both times are known."""
    sends = {s.tag: s for u in users for s in u.sends}
    out: list[tuple[float, float]] = []
    for user in users:
        seen: set[str] = set()
        for message, arrived in zip(user.deliveries, user.arrivals, strict=False):
            send = sends.get(message.body)
            if send is None or send.state != "acked" or not send.started or send.tag in seen:
                continue
            seen.add(send.tag)
            out.append((send.started, arrived - send.started))
    return out


def fault_outcomes(
    users: list[_User], receivers: list[_User], faults: list[FaultResult]
) -> tuple[FaultResult, ...]:
    """``faults`` with their recovery times and longest delays filled in from the
    senders' records (``users``) and every receiver's arrivals (``receivers``)."""
    delays = _delays(receivers)
    out = []
    for fault in faults:
        send_waits = []
        for user in users:
            done = [s.done_at for s in user.sends if s.state == "acked" and s.done_at > fault.ended]
            if done:
                send_waits.append(min(done) - fault.ended)
        arrival_waits = []
        for receiver in receivers:
            after = [t for t in receiver.arrivals if t > fault.ended]
            if after:
                arrival_waits.append(min(after) - fault.ended)
        window = [d for start, d in delays if fault.started <= start <= fault.ended + DELAY_WINDOW]
        out.append(
            FaultResult(
                fault.name,
                fault.started,
                fault.ended,
                fault.evidence,
                send_recovery=max(send_waits) if send_waits else None,
                delivery_recovery=max(arrival_waits) if arrival_waits else None,
                longest_delay=max(window) if window else None,
            )
        )
    return tuple(out)


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
