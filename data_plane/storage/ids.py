"""Time-ordered 64-bit message ids (snowflake layout).

Layout, most significant bit first::

    0 | 41 bits: ms since 2024-01-01T00:00:00Z | 10 bits: node id | 12 bits: sequence

Ids of one generator strictly increase. Two generators never collide as long as their
node ids differ, which is why node ids are leased from the registry (two live nodes never
share one). The 41-bit timestamp lasts until about 2093.

If the wall clock steps back, the generator keeps using its last timestamp (it "borrows"
from the past it already issued) instead of waiting; when the 4,096 ids of one
millisecond are used up it borrows the next millisecond. Either way the logical clock
runs at most a little ahead of the wall clock and catches up by itself, so ``next_id``
never blocks, which matters because it runs on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EPOCH_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z in ms since the unix epoch."""

TIMESTAMP_BITS = 41
NODE_BITS = 10
SEQUENCE_BITS = 12

MAX_NODE_ID = (1 << NODE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
_NODE_SHIFT = SEQUENCE_BITS
_TIME_SHIFT = SEQUENCE_BITS + NODE_BITS
_MAX_TIMESTAMP = (1 << TIMESTAMP_BITS) - 1


def wall_clock_ms() -> int:
    """Milliseconds since the unix epoch, from the system clock."""
    return time.time_ns() // 1_000_000


class SnowflakeIds:
    """Generator of unique, strictly increasing 64-bit ids for one node.

    Thread-safe. ``clock`` returns ms since the unix epoch (injected by tests).
    """

    __slots__ = ("_clock", "_last_ms", "_lock", "_node_id", "_sequence")

    def __init__(self, node_id: int, *, clock: Callable[[], int] = wall_clock_ms) -> None:
        if not 0 <= node_id <= MAX_NODE_ID:
            raise ValueError(f"node id must be within 0..{MAX_NODE_ID}, got {node_id}")
        self._node_id = node_id
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    @property
    def node_id(self) -> int:
        """The node id encoded in every id of this generator."""
        return self._node_id

    def now_ms(self) -> int:
        """The generator's clock: ms since the unix epoch."""
        return self._clock()

    def next_id(self) -> int:
        """A new id, greater than every id this generator returned before."""
        with self._lock:
            now = self._clock() - EPOCH_MS
            if now > self._last_ms:
                self._last_ms = now
                self._sequence = 0
            elif self._sequence < MAX_SEQUENCE:
                # Same millisecond, or the clock stepped back: keep the last timestamp.
                self._sequence += 1
            else:
                # This millisecond is used up: borrow the next one instead of waiting.
                self._last_ms += 1
                self._sequence = 0
            if not 0 <= self._last_ms <= _MAX_TIMESTAMP:
                raise OverflowError("clock outside the range of snowflake ids")
            return (self._last_ms << _TIME_SHIFT) | (self._node_id << _NODE_SHIFT) | self._sequence

    @staticmethod
    def time_of(snowflake: int) -> int:
        """The creation time encoded in ``snowflake``, in ms since the unix epoch."""
        return (snowflake >> _TIME_SHIFT) + EPOCH_MS

    @staticmethod
    def node_of(snowflake: int) -> int:
        """The node id encoded in ``snowflake``."""
        return (snowflake >> _NODE_SHIFT) & MAX_NODE_ID
