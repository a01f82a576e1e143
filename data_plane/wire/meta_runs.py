"""Decoded meta runs, cached by their bytes, and the byte walks that find them.

Every packet a gateway forwards ends with the same few metas per client; the decoder in
:mod:`data_plane.wire.packet` reuses the :class:`~data_plane.wire.meta.Meta` tuples it
decoded from the same bytes before. This module holds the bounded cache
(:class:`_MetaRuns`) and the walks over a serialized Header that find where its meta run
starts (:func:`_first_meta_entry`) and check that a run is nothing but meta entries
(:func:`_is_meta_run`). Pure functions of bytes; no protobuf parsing happens here.
"""

from __future__ import annotations

from data_plane.wire.meta import Meta


class _MetaRuns:
    """Decoded meta runs by their bytes, bounded, and out of the way when they miss.

    A run is kept until ``max_entries`` are, then all are dropped at once (dropping the
    oldest of a dict one by one is not O(1); clients that stay connected come back at the
    cost of one miss each). When fewer than half of a ``window`` of lookups hit (more
    distinct clients than entries, or metas that never repeat), lookups stop for the next
    ``pause`` packets that may carry meta: a miss costs more than no cache (a walk, a
    check, and objects kept alive for the garbage collector to scan), so thrashing must
    not go on.
    """

    __slots__ = (
        "entries",
        "hits",
        "lookups",
        "max_entries",
        "max_run",
        "pause",
        "paused",
        "window",
    )

    def __init__(
        self,
        *,
        max_entries: int = 16384,
        max_run: int = 1024,
        window: int = 4096,
        pause: int = 65536,
    ) -> None:
        self.entries: dict[bytes, tuple[Meta, ...]] = {}
        self.max_entries = max_entries
        self.max_run = max_run
        """Longer runs (a group push's channel list) are not worth keeping."""
        self.window = window
        self.pause = pause
        self.lookups = 0
        self.hits = 0
        self.paused = 0
        """Packets left to decode without the cache."""

    def put(self, run: bytes, meta: tuple[Meta, ...]) -> None:
        """Keep ``meta`` as the decoding of ``run``."""
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[run] = meta

    def tally(self) -> None:
        """End of a window of lookups: pause when fewer than half of them hit."""
        if self.hits * 2 < self.lookups:
            self.entries.clear()
            self.paused = self.pause
        self.lookups = 0
        self.hits = 0


_META_TAG = 0x3A  # field 7 (meta), wire type 2 (length-delimited)
_META_TAG_BYTE = bytes((_META_TAG,))


def _first_meta_entry(raw: bytes) -> int:
    """Where the first meta entry starts in a serialized Header, found by stepping over
    the fields before it; -1 when there is none or the walk meets something it does not
    handle (a multi-byte tag, which could be a field 7 written long, a group, a cut
    field): the caller then parses the Header as a whole, as it would without the cache.
    """
    pos = 0
    end = len(raw)
    try:
        while pos < end:
            tag = raw[pos]
            if tag == _META_TAG:
                return pos
            if tag & 0x80:
                return -1
            pos += 1
            wire_type = tag & 7
            if wire_type == 2:  # _skip_value, inlined: this runs for every packet
                length = 0
                shift = 0
                while True:
                    byte = raw[pos]
                    pos += 1
                    length |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
                pos += length
            elif wire_type == 0:
                while raw[pos] & 0x80:
                    pos += 1
                pos += 1
            elif wire_type == 5:
                pos += 4
            elif wire_type == 1:
                pos += 8
            else:
                return -1
    except IndexError:
        return -1
    return -1


def _is_meta_run(run: bytes) -> bool:
    """True when ``run`` is one or more whole meta entries (field 7) and nothing else."""
    pos = 0
    end = len(run)
    try:
        while pos < end:
            if run[pos] != _META_TAG:
                return False
            pos = _skip_value(run, pos + 1, 2)
    except (IndexError, ValueError):
        return False
    return pos == end


def _skip_value(raw: bytes, pos: int, wire_type: int) -> int:
    """The offset after the value of ``wire_type`` at ``pos``; IndexError when it is cut
    short, ValueError for a wire type other than varint, fixed and length-delimited."""
    if wire_type == 2:
        length = 0
        shift = 0
        while True:
            byte = raw[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if pos + length > len(raw):
            raise IndexError("cut short")
        return pos + length
    if wire_type == 0:
        while raw[pos] & 0x80:
            pos += 1
        return pos + 1
    if wire_type == 5:
        return pos + 4
    if wire_type == 1:
        return pos + 8
    raise ValueError(f"wire type {wire_type}")
