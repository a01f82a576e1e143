"""Refuse a send whose push could not reach its receivers (TooLarge, 413).

A client packet is limited (``max_packet_size``, 64 KiB by default) and a gateway drops
a push over the limit: a message whose push is larger (a body near the limit, a long
sender name) would be stored and acknowledged but pushed to no one. So before storing,
the handler builds the push the message will cause with every number the store has not
given out yet at its widest encoding (message id, time, sequences: 2**63 - 1; the
header's sequence: 2**32 - 1) and refuses the send when that packet, as the gateway
writes it to a client (no meta, no channel id), does not fit. The bound is exact for the
widest numbers and at most ~40 bytes above any real push.

Building that packet costs a few microseconds, so a send clearly below the limit skips
it: the push is the request's body fields re-encoded (never longer than the request's
raw body, canonical protobuf being minimal) plus the header, sender, group and numbers,
all within :data:`_SLACK` bytes besides their strings.
"""

from __future__ import annotations

from collections.abc import Callable

from data_plane.logic.refusal import Refused
from data_plane.storage.messages.protocol import SendResult
from data_plane.wire import LogicPacket, Status

PushOf = Callable[[SendResult, int], LogicPacket]
"""Builds a message's push from the store's result and the receiver's inbox sequence
(``handlers.chat.message_push`` with the message's other fields bound)."""

_WIDEST = 2**63 - 1
"""The largest positive int64: the widest varint any stored number gets (9 bytes)."""
_WIDEST_SEQUENCE = 2**32 - 1
"""The widest header sequence (uint32), should a gateway number its pushes."""
_SLACK = 128
"""Bytes of a push besides the request body and the strings of :func:`refuse_oversize_push`:
magic and lengths 12, header tags, lengths and numbers 15, four int64 fields 40, tags and
lengths of sender and group 6 (73), rounded up; ``tests/logic/test_push_size.py`` checks
it."""


def push_size(push_of: PushOf) -> int:
    """The largest size, in bytes on a client connection, the push ``push_of`` builds
    can have (see the module docstring)."""
    widest = SendResult(_WIDEST, _WIDEST, False, _WIDEST, _WIDEST, _WIDEST)
    push = push_of(widest, _WIDEST).replace(sequence=_WIDEST_SEQUENCE)
    return len(push.encode_without_meta(channel_id=""))


def refuse_oversize_push(push_of: PushOf, limit: int, *, raw_body: int, strings: str) -> None:
    """Raise :class:`Refused` (TooLarge) when the push may exceed ``limit`` bytes.

    ``raw_body`` is the request body's size and ``strings`` the command, dest, sender and
    group concatenated: when they and the slack fit, the push surely does.
    """
    if raw_body + len(strings.encode()) + _SLACK <= limit:
        return
    size = push_size(push_of)
    if size > limit:
        raise Refused(
            Status.TOO_LARGE,
            f"the message's push ({size} bytes) would exceed the {limit}-byte packet "
            "limit: send a shorter body or extra",
        )
