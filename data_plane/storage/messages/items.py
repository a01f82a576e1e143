"""What the SQL writers queue and write: sends, acks and inbox rows as plain tuples.

These are the shared vocabulary of the write path (``sends``, ``acks``, ``delivery``,
``statements``): frozen slotted dataclasses for queued items, tuples for the rows that
are written by the thousand (a tuple costs less to build and to bind than an object).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, TypeVar

from data_plane.storage.messages.protocol import Direction, SendResult

T = TypeVar("T")

CHUNK = 300
"""Keys per IN list or multi-row statement (SQLite allows 32,766 parameters)."""


@dataclass(frozen=True, slots=True)
class Send:
    """One queued send (1:1 or group), as the send writer decides it."""

    tenant: str
    sender: str
    receiver: str  # '' for a group message
    group_id: str  # '' for a 1:1 message
    type: int
    body: bytes
    extra: str
    client_msg_id: str | None

    @property
    def key(self) -> tuple[str, str, str] | None:
        """The idempotency key (tenant, sender, client_msg_id), or None without one."""
        if self.client_msg_id is None:
            return None
        return (self.tenant, self.sender, self.client_msg_id)


@dataclass(frozen=True, slots=True)
class Ack:
    """One queued ack: move the device's read index to ``message_id`` if newer."""

    tenant: str
    account: str
    device: str
    message_id: int


SendOutcome = tuple[SendResult, list[str]]
"""A stored send's result and, for a group message, the members it reached."""

InboxTail = tuple[int, int, str, str, int]
"""An inbox row after (tenant, account, seq): message_id, direction, account_b, group_id,
send_time. A group message's rows share one tail object."""
Delivery = tuple[str, str, InboxTail]
"""(tenant, account, tail): one inbox row still to be numbered."""
InboxRow = tuple[str, str, int, InboxTail]
"""(tenant, account, seq, tail): one numbered inbox row."""

RECEIVED = int(Direction.RECEIVED)
SENT = int(Direction.SENT)
MESSAGE_COLUMNS = (
    "message_id, tenant, sender, receiver, group_id, group_seq, type, body, extra, "
    "client_msg_id, send_time, conv_a, conv_b"
)
INBOX_COLUMNS = "tenant, account, seq, message_id, direction, account_b, group_id, send_time"


def conversation_key(sender: str, receiver: str, group_id: str) -> tuple[str, str]:
    """``messages.conv_a`` / ``conv_b``: (group id, '') for a group message, the two
    accounts in code-point order (UTF-8 byte order, the binary collation's) for 1:1."""
    if group_id:
        return group_id, ""
    return (sender, receiver) if sender < receiver else (receiver, sender)


def message_row(item: Send, message_id: int, send_time: int, group_seq: int) -> tuple[Any, ...]:
    """A ``messages`` row in ``MESSAGE_COLUMNS`` order."""
    return (
        message_id,
        item.tenant,
        item.sender,
        item.receiver,
        item.group_id,
        group_seq,
        item.type,
        item.body,
        item.extra,
        item.client_msg_id,
        send_time,
        *conversation_key(item.sender, item.receiver, item.group_id),
    )


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def by_tenant(keys: Iterable[tuple[str, T]]) -> Iterator[tuple[str, list[T]]]:
    """Sorted keys grouped by tenant: (tenant, [rest of key, …]) in lock order."""
    for tenant, group in groupby(sorted(set(keys)), key=lambda key: key[0]):
        yield tenant, [key[1] for key in group]
