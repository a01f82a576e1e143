"""Holes in a channel's inbox stream: noticed, waited for briefly, then filled.

A channel's :class:`~data_plane.gateway.sequencer.Sequencer` knows of a hole when a push
arrived ahead of the next row, or when a head check found rows the channel never got.
:class:`HoleFiller` then

1. waits ``grace`` (0.5 s by default): pushes from different logic nodes may overtake
   each other, and the missing one is usually in flight;
2. asks a logic node (``sync.fill``, over the channel's link for the ``sync`` service)
   to push the missing rows again from the store, to this channel alone; they come
   before the answer on the same link and the sequencer delivers them, then what was
   held behind them;
3. closes the connection with 4007 ("resync") when the fill fails, is not answered
   within ``fill_timeout`` (10 s), or brings nothing: the client reconnects and syncs
   from its last ack, which never passed the hole.

A lost push with no later push would leave no trace in the stream, so the heads of
every sequenced channel's account are also checked (``sync.heads``, up to
``heads_batch`` accounts per request): every ``sweep_interval`` (60 s, the location
re-assert interval), and ``grace`` after any logic link came up or went down (a node
that died or restarted mid-push). A head above what the channel got is a hole like any
other. So a message is late by at most ``grace`` + a fill round trip when a later push
or a link change reveals the hole, and by at most ``sweep_interval`` + ``grace`` + a
round trip when nothing does.

Every timer reads the injected :class:`~data_plane.gateway.clock.Clock`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from typing import NoReturn

import anyio

from data_plane.cluster.protocol import (
    FILL_COMMAND,
    HEADS_COMMAND,
    META_ACCOUNTS,
    META_FROM,
    META_HEADS,
    META_TO,
)
from data_plane.gateway.channel import Channel
from data_plane.gateway.clock import Clock
from data_plane.gateway.sequencer import Sequencer
from data_plane.metrics import SEQUENCER
from data_plane.transport.connection import CloseCode
from data_plane.wire import LogicPacket, Meta, Status

log = logging.getLogger(__name__)

GRACE = 0.5
FILL_TIMEOUT = 10.0
SWEEP_INTERVAL = 60.0
HEADS_BATCH = 500
MAX_FILL = 500
"""Rows asked per ``sync.fill`` (the logic node's own cap); a longer hole takes rounds."""


class HoleFiller:
    """Grace timers, fills and head checks of the sequenced channels of one gateway."""

    def __init__(
        self,
        clock: Clock,
        channels: Mapping[str, Channel],
        send: Callable[[Channel, LogicPacket], bool],
        *,
        grace: float = GRACE,
        fill_timeout: float = FILL_TIMEOUT,
        sweep_interval: float = SWEEP_INTERVAL,
        heads_batch: int = HEADS_BATCH,
    ) -> None:
        """``send`` forwards an internal request for a channel, with the channel's meta
        and the packet's own (False when no logic node serves it)."""
        self._clock = clock
        self._channels = channels
        self._send = send
        self.grace = grace
        self.fill_timeout = fill_timeout
        self.sweep_interval = sweep_interval
        self.heads_batch = heads_batch
        self._numbers = itertools.count(1)
        self._heads_pending: dict[tuple[str, int], dict[str, list[Channel]]] = {}
        self._changed = anyio.Event()

    # -- one channel -------------------------------------------------------------------

    def watch(self, channel: Channel) -> None:
        """Arm the grace timer if ``channel`` has a hole and nothing is under way."""
        s = channel.sequencer
        if s is None or s.timer is not None or s.filling or s.hole() is None:
            return
        when = self._clock.now() + self.grace
        s.timer = self._clock.call_at(when, lambda: self._grace_over(channel, s))

    def _live(self, channel: Channel, s: Sequencer) -> bool:
        return (
            self._channels.get(channel.id) is channel
            and channel.sequencer is s
            and not channel.conn.is_closed
        )

    def _grace_over(self, channel: Channel, s: Sequencer) -> None:
        s.timer = None
        hole = s.hole()
        if not self._live(channel, s) or hole is None:
            return
        first, last = hole[0], min(hole[1], hole[0] + MAX_FILL - 1)
        ask = LogicPacket.request(
            FILL_COMMAND,
            sequence=next(self._numbers),
            meta=(Meta(META_FROM, str(first)), Meta(META_TO, str(last))),
        )
        if not self._send(channel, ask):
            self.resync(channel, "no logic node to fill a gap in the inbox stream")
            return
        SEQUENCER.labels("fill").inc()
        s.filling = first
        when = self._clock.now() + self.fill_timeout
        s.timer = self._clock.call_at(when, lambda: self._fill_timed_out(channel, s))

    def _fill_timed_out(self, channel: Channel, s: Sequencer) -> None:
        s.timer = None
        if s.filling and self._live(channel, s):
            self.resync(channel, "a gap in the inbox stream was not filled in time")

    def on_fill_answer(self, channel: Channel, answer: LogicPacket) -> None:
        """The answer to a ``sync.fill``: the rows it pushed came before it."""
        s = channel.sequencer
        if s is None or not s.filling:
            return
        asked, s.filling = s.filling, 0
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None
        if answer.status != Status.SUCCESS:
            self.resync(channel, f"filling a gap in the inbox stream failed ({answer.status})")
        elif s.next_seq <= asked:
            self.resync(channel, f"inbox row {asked} could not be pushed again")
        else:
            SEQUENCER.labels("filled").inc(s.next_seq - asked)
            self.watch(channel)  # the rest of a long hole, or a new one

    def resync(self, channel: Channel, reason: str) -> None:
        """Close the connection (4007): the client reconnects and syncs from its ack."""
        SEQUENCER.labels("resync").inc()
        log.warning("%s: %s; closing it to resync", channel.id, reason)
        channel.conn.close(CloseCode.RESYNC, reason)

    # -- head checks -------------------------------------------------------------------

    def links_changed(self) -> None:
        """A logic link came up or went down: check heads after ``grace``."""
        self._changed.set()

    async def run(self) -> NoReturn:
        """Check heads every ``sweep_interval``, and ``grace`` after a link change."""
        while True:
            with self._clock.move_on_after(self.sweep_interval):
                await self._changed.wait()
            if self._changed.is_set():
                self._changed = anyio.Event()
                await self._clock.sleep(self.grace)
            self.sweep()

    def sweep(self) -> int:
        """Ask the heads of every sequenced channel's account; returns the requests sent.
        Answers to an earlier sweep still outstanding are forgotten."""
        self._heads_pending.clear()
        by_tenant: dict[str, dict[str, list[Channel]]] = {}
        for channel in self._channels.values():
            if channel.sequencer is not None:
                accounts = by_tenant.setdefault(channel.tenant, {})
                accounts.setdefault(channel.account, []).append(channel)
        sent = 0
        for accounts in by_tenant.values():
            names = list(accounts)
            for start in range(0, len(names), self.heads_batch):
                chunk = names[start : start + self.heads_batch]
                carrier = accounts[chunk[0]][0]
                number = next(self._numbers)
                ask = LogicPacket.request(
                    HEADS_COMMAND, sequence=number, meta=(Meta(META_ACCOUNTS, ",".join(chunk)),)
                )
                if self._send(carrier, ask):
                    self._heads_pending[(carrier.id, number)] = {a: accounts[a] for a in chunk}
                    sent += 1
        return sent

    def on_heads_answer(self, channel: Channel, answer: LogicPacket) -> None:
        """The answer to a ``sync.heads``: holes where a head is above the stream."""
        waiting = self._heads_pending.pop((channel.id, answer.sequence), None)
        if waiting is None or answer.status != Status.SUCCESS:
            return
        heads = (answer.meta_value(META_HEADS) or "").split(",")
        for channels, head in zip(waiting.values(), heads, strict=False):
            for target in channels:
                if target.sequencer is not None and head.isdigit():
                    target.sequencer.learn_head(int(head))
                    self.watch(target)
