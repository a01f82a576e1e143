"""The idle timeout of every logged-in channel of a gateway, on shared timers.

Theory of operation
-------------------
A channel whose connection heard no frame for ``idle`` seconds is closed with
IDLE_TIMEOUT (4005). Activity never touches a timer: the transport only moves the
connection's ``last_activity`` forward (stamped by the same clock), and a check that
finds the channel active since re-files it for its new deadline.

A gateway holds tens of thousands of mostly idle channels, and a loop timer per channel
costs about half a KiB. So deadlines are rounded up to the next multiple of ``tick``
and every channel due in the same tick shares one :class:`IdleBucket`: a set of channels
and one timer on the clock. A bucket's timer fires at its tick; each channel in it
is closed if its deadline has passed, else filed again for its deadline. Hence:

- a channel is never closed before ``idle`` seconds of silence, and at most ``tick``
  seconds after (a timer that fires a little early closes nothing before its
  deadline: the channel is filed again);
- forgetting a channel (its connection ended) takes it out of its bucket at once, and
  the bucket's timer is cancelled when the last channel leaves it, so nothing of a
  closed connection stays behind;
- at most ``idle / tick + 1`` timers run, whatever the number of channels.
"""

from __future__ import annotations

import math

from data_plane.gateway.channel import Channel
from data_plane.gateway.clock import Clock, Timer
from data_plane.transport.connection import CloseCode

IDLE_TICK = 1.0
"""Seconds of deadline that share one timer (and how late an idle close may be)."""


class IdleBucket:
    """The channels whose deadline falls in one tick, and the timer of that tick."""

    __slots__ = ("channels", "key", "timer")

    def __init__(self, key: int, timer: Timer) -> None:
        self.key = key
        self.channels: set[Channel] = set()
        self.timer = timer


class IdleSweeper:
    """Closes each watched channel once its connection stayed silent ``idle`` seconds.

    ``clock`` must be the one the connections' ``last_activity`` is stamped with.
    """

    __slots__ = ("_buckets", "_clock", "_idle", "_tick")

    def __init__(self, idle: float, clock: Clock, *, tick: float = IDLE_TICK) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self._idle = idle
        self._clock = clock
        self._tick = tick
        self._buckets: dict[int, IdleBucket] = {}

    def watch(self, channel: Channel) -> None:
        """Start watching ``channel`` (from its connection's last frame on)."""
        self.forget(channel)
        self._file(channel, channel.conn.last_activity + self._idle)

    def forget(self, channel: Channel) -> None:
        """Stop watching ``channel`` (its connection ended). Idempotent."""
        bucket = channel.idle
        if bucket is None:
            return
        channel.idle = None
        bucket.channels.discard(channel)
        if not bucket.channels and self._buckets.get(bucket.key) is bucket:
            del self._buckets[bucket.key]
            bucket.timer.cancel()

    @property
    def timers(self) -> int:
        """Timers scheduled now (one per tick that has a channel due)."""
        return len(self._buckets)

    def _file(self, channel: Channel, deadline: float) -> None:
        tick = self._tick
        key = math.ceil(deadline / tick)
        if key * tick < deadline:  # float rounding: the tick must not come before it
            key += 1
        bucket = self._buckets.get(key)
        if bucket is None:
            timer = self._clock.call_at(key * tick, lambda: self._due(key))
            bucket = self._buckets[key] = IdleBucket(key, timer)
        bucket.channels.add(channel)
        channel.idle = bucket

    def _due(self, key: int) -> None:
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            return
        now, idle = self._clock.now(), self._idle
        for channel in bucket.channels:
            channel.idle = None
            conn = channel.conn
            if conn.is_closed:
                continue  # its end forgets it; nothing left to do here
            deadline = conn.last_activity + idle
            if now >= deadline:
                conn.close(CloseCode.IDLE_TIMEOUT, "idle timeout")
            else:
                self._file(channel, deadline)
