"""One channel's inbox rows, delivered once each and in inbox order (pure code).

Theory of operation
-------------------
Every account's inbox numbers its rows 1, 2, 3, … in commit order, and every push of a
stored message names, per channel, the row's number in that channel's account's inbox
(``seqs`` meta). The gateway is the last hop before the device, so it can make the
device's stream gap-free: a :class:`Sequencer` per channel starts at the inbox head the
logic node read at login (rows up to it are the client's own sync) and then

- delivers a push whose number is the next one (the in-order path: one compare),
- drops a push numbered below it (a duplicate: delivered already, or the client's own
  sync has it),
- holds a push numbered above it until the rows between arrive (pushes from different
  logic nodes can overtake each other), and delivers the run that becomes contiguous;
- counts the rows the channel's own sends took (their answers carry the sender's inbox
  number) as delivered: the client has its own message;
- counts the rows a sync answer (``chat.offline.index``) gave the client as delivered,
  so a push of such a row is dropped, held or not.

A hole that does not close by itself is filled from the store (``gateway.holes``). The
held pushes are bounded (``max_held`` packets, ``max_bytes`` bytes): beyond that,
:class:`Overflow` is raised and the connection must be closed; the client reconnects and
syncs from its last ack, which never passed the hole because nothing after the hole was
delivered.
"""

from __future__ import annotations

from collections.abc import Iterable

from data_plane.gateway.clock import Timer

MAX_HELD = 64
MAX_HELD_BYTES = 256 * 1024


class Overflow(Exception):
    """More pushes wait behind a hole than the channel may hold."""


class Sequencer:
    """The next inbox row a channel must get, and the pushes held until it comes.

    ``known`` is the highest row known to exist (from pushes, own sends and head
    checks); the channel has a hole while ``known >= next_seq``. ``timer`` and
    ``filling`` belong to ``gateway.holes`` (the grace timer, the fill in flight).
    """

    __slots__ = ("_held_bytes", "filling", "known", "max_bytes", "max_held", "next_seq", "pending",
                 "timer")  # fmt: skip

    def __init__(self, head: int, max_held: int = MAX_HELD, max_bytes: int = MAX_HELD_BYTES):
        self.next_seq = head + 1
        self.known = head
        self.max_held = max_held
        self.max_bytes = max_bytes
        self.pending: dict[int, bytes | None] | None = None
        """Held pushes by row (None: a row the client has, e.g. its own send); None or
        empty on the in-order path, which the router takes without calling
        :meth:`offer` (the dict is made by the first push held, dropped when the run
        that continues the stream was taken out)."""
        self._held_bytes = 0
        self.timer: Timer | None = None
        self.filling = 0
        """The first row of the ``sync.fill`` in flight; 0 when none is."""

    @property
    def held(self) -> int:
        """Pushes (and own-send marks) waiting behind a hole."""
        return len(self.pending or ())

    def offer(self, seq: int, data: bytes | None) -> list[bytes] | None:
        """Take the push of row ``seq`` (``data`` None: the channel's own send took it).

        Returns the packets to deliver now, in order (empty when ``seq`` is held), or
        None when it is a duplicate (dropped). Raises :class:`Overflow` when holding it
        would pass the bounds.
        """
        held = self.pending
        if seq < self.next_seq or (held and seq in held):
            return None
        if seq > self.known:
            self.known = seq
        if seq > self.next_seq:
            size = len(data) if data is not None else 0
            if len(held or ()) >= self.max_held or self._held_bytes + size > self.max_bytes:
                raise Overflow(f"more than {self.max_held} pushes or {self.max_bytes} bytes held")
            if held is None:
                held = self.pending = {}
            held[seq] = data
            self._held_bytes += size
            return []
        out = [] if data is None else [data]
        self.next_seq = seq + 1
        return out + self._drain() if self.pending else out

    def _drain(self) -> list[bytes]:
        """The held run that continues the stream, taken out in order."""
        out: list[bytes] = []
        held = self.pending
        if held is None:
            return out
        while self.next_seq in held:
            following = held.pop(self.next_seq)
            if following is not None:
                out.append(following)
                self._held_bytes -= len(following)
            self.next_seq += 1
        if not held:
            self.pending = None
        return out

    def synced(self, seqs: Iterable[int]) -> list[bytes]:
        """The client got rows ``seqs`` in a sync answer: they count as delivered (held
        pushes of them are dropped); returns what is now in order."""
        rows = set(seqs)
        held = self.pending
        if held is None:
            held = {}  # nothing held: the loops below only move next_seq over rows
        for seq in rows:
            data = held.get(seq)
            if data is not None:
                self._held_bytes -= len(data)
                held[seq] = None
        out: list[bytes] = []
        while True:
            seq = self.next_seq
            if seq in held:
                data = held.pop(seq)
                if data is not None:
                    out.append(data)
                    self._held_bytes -= len(data)
            elif seq not in rows:
                break
            self.next_seq = seq + 1
            if seq > self.known:
                self.known = seq
        if not held:
            self.pending = None
        return out

    def learn_head(self, head: int) -> None:
        """The inbox has rows up to ``head`` (a head check): any not delivered yet are
        a hole."""
        if head > self.known:
            self.known = head

    def hole(self) -> tuple[int, int] | None:
        """The first missing run of rows (first, last), or None when there is none."""
        if self.known < self.next_seq:
            return None
        first_held = min(self.pending) if self.pending else self.known + 1
        return (self.next_seq, first_held - 1)
