"""The durable message store: 1:1 and group messages, inboxes, read indexes, groups.

Theory of operation (write diffusion, pull for offline):

- A message's content is stored once under a snowflake ``message_id``. Every account
  that sees it gets one row in its own *inbox*: the receiver and the sender of a 1:1
  message, every member of a group. Each inbox numbers its rows with its own sequence
  (1, 2, 3, … with no gaps), assigned inside the storing transaction while that inbox's
  counter is locked, so commit order equals sequence order: a reader that pages by
  sequence can never skip a row that commits late, whichever node wrote it.
- A send returns only after its transaction committed. Concurrent sends are committed
  together in small batches (group commit); a send that fails is never reported as a
  success, and a send reported as failed may still have been stored (the commit's answer
  was lost), which is why clients resend with the same ``client_msg_id``.
- Idempotency: a second send with the same (tenant, sender, client_msg_id) stores
  nothing and returns the original message id, send time and group sequence with
  ``duplicate=True`` — also when both are in flight at once, on one node or two.
- Each (tenant, account, device) has a read index that only moves forward; pulling from
  message id 0 means "after what this device acknowledged".

Message ids grow with time on one node, but only the inbox sequence orders an inbox:
never sort or compare message ids across nodes. Every method is scoped by tenant;
nothing is visible across tenants. Accounts, group ids, devices and client message ids
are case-sensitive and must not end with a space.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from data_plane.storage.errors import StorageError
from data_plane.storage.messages.conversation_protocol import ConversationStore
from data_plane.storage.messages.group_admin_protocol import GroupAdministration
from data_plane.storage.messages.group_model import GroupChanges, JoinPolicy, Role
from data_plane.storage.messages.schema import (
    ANNOUNCEMENT_LENGTH,
    APPLICATION_LENGTH,
    AVATAR_LENGTH,
    DEVICE_LENGTH,
    EXTRA_LENGTH,
    GROUP_NAME_LENGTH,
    ID_LENGTH,
    INTRODUCTION_LENGTH,
    MAX_BODY_BYTES,
)

MEMORY_URL = "memory://"


class UnknownMessage(StorageError):
    """The message id is not in the account's inbox."""


class GroupNotFound(StorageError):
    """No group with this id exists in the tenant."""


class NotAMember(StorageError):
    """The account is not a member of the group."""


class AlreadyMember(StorageError):
    """The account is already a member of the group.

    The stores report this through ``join_group`` returning False; handlers that prefer
    an error raise this one.
    """


class InvalidField(StorageError, ValueError):
    """An argument is empty where it must not be, or longer than its column."""


class Direction(enum.IntEnum):
    """Which way an inbox row points, from the inbox owner's view."""

    RECEIVED = 0
    SENT = 1


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of a send.

    ``seq`` is the group sequence of a group message, 0 for a 1:1 message.
    ``duplicate`` is True when the send was a resend of an already stored
    ``client_msg_id``: the other fields are then the original's, except the inbox
    sequences. ``inbox_seq`` is the sequence of the message's row in the sender's inbox
    (1:1 and group); ``receiver_inbox_seq`` the receiver's of a 1:1 message (equal for a
    message to oneself); ``member_seqs`` a group message's row in each member's inbox,
    aligned with the member list ``send_group_message`` returns. All are 0 / empty for
    duplicates (nothing is pushed for those).
    """

    message_id: int
    send_time: int
    duplicate: bool
    seq: int
    inbox_seq: int = 0
    receiver_inbox_seq: int = 0
    member_seqs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One inbox row. ``seq`` is the inbox sequence; ``account_b`` the other party.

    For a received 1:1 message ``account_b`` is the sender, for a sent one the receiver;
    for a group message it is always the sender and ``group_id`` names the group.
    """

    message_id: int
    direction: Direction
    send_time: int
    account_b: str
    group_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class IndexPage:
    """A page of inbox rows, oldest first; ``has_more`` when more rows follow."""

    entries: list[IndexEntry]
    has_more: bool


@dataclass(frozen=True, slots=True)
class Content:
    """The stored content of one message."""

    message_id: int
    type: int
    body: bytes
    extra: str
    recalled: bool = False
    """A tombstone: the sender recalled the message, body and extra are empty."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored: content plus addressing (what a push needs)."""

    message_id: int
    sender: str
    receiver: str
    group_id: str
    group_seq: int
    type: int
    body: bytes
    extra: str
    client_msg_id: str | None
    send_time: int


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One inbox row with its message's content: what it takes to push it again.

    ``account_b`` and ``direction`` are the row's (see :class:`IndexEntry`);
    ``group_seq`` is the group sequence of a group message, 0 for a 1:1 message.
    """

    seq: int
    message_id: int
    direction: Direction
    account_b: str
    group_id: str
    group_seq: int
    send_time: int
    type: int
    body: bytes
    extra: str
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class Member:
    """A group member. ``join_time`` in ms since the unix epoch; ``role`` is the role
    besides ownership (the owner is ``Group.owner``), ``muted`` refuses its talks."""

    account: str
    alias: str
    avatar: str
    join_time: int
    role: Role = Role.MEMBER
    muted: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """A group with its members, ordered by join time, then account."""

    group_id: str
    name: str
    avatar: str
    introduction: str
    owner: str
    created_at: int
    members: list[Member]
    announcement: str = ""
    join_policy: JoinPolicy = JoinPolicy.INVITE
    muted: bool = False
    """The whole-group mute (the owner and admins may still talk)."""


class MessageStore(ConversationStore, GroupAdministration, Protocol):
    """Durable storage of messages, inboxes, read indexes, groups and conversations
    (``conversation_protocol``).

    The group-administration methods are ``group_admin_protocol.GroupAdministration``'s.
    Implementations: ``MemoryMessageStore`` (tests, the embedded default without a
    database file) and ``SqlMessageStore`` (SQLite, MySQL). Both raise
    ``MessageStoreUnavailable`` when the backend is unreachable or failing, never a
    success for an operation that did not commit.
    """

    async def send_user_message(
        self,
        tenant: str,
        sender: str,
        receiver: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> SendResult:
        """Store a 1:1 message; return after it committed.

        Writes the content once, an inbox row for the receiver (``RECEIVED``,
        ``account_b`` = sender) and one for the sender (``SENT``, ``account_b`` =
        receiver), each numbered by its inbox's next sequence, in one transaction. A
        message to oneself gets a single ``SENT`` row. One sender's messages submitted
        in order are stored in that order. With a ``client_msg_id`` already stored for
        (tenant, sender), nothing is written and the original is returned with
        ``duplicate=True``. Raises ``InvalidField`` for empty accounts or oversize
        fields, ``MessageStoreUnavailable`` when it cannot commit.
        """
        ...

    async def send_group_message(
        self,
        tenant: str,
        sender: str,
        group_id: str,
        type: int,
        body: bytes,
        extra: str,
        client_msg_id: str | None,
    ) -> tuple[SendResult, list[str]]:
        """Store a group message; return the result and the members who got a row.

        In one transaction: the group's sequence moves up by exactly one (the group row
        is locked, so all members see one order), the content is stored once with that
        sequence, and every current member gets an inbox row (``SENT`` for the sender,
        ``RECEIVED`` for the others, ``account_b`` = sender); the result's
        ``member_seqs`` are those rows' sequences, in member order. Raises ``GroupNotFound``,
        ``NotAMember`` (sender not in the group; the tenant's system sender,
        ``identity.SYSTEM_SENDER``, may send to any group and gets no row), ``InvalidField``,
        ``MessageStoreUnavailable``. A duplicate ``client_msg_id`` returns the original
        result with ``duplicate=True`` and an empty member list (nothing to push).
        """
        ...

    async def ack(self, tenant: str, account: str, device: str, message_id: int) -> bool:
        """Move the device's read index to ``message_id`` if that is forward.

        Forward means the message's inbox sequence is greater than the current read
        index's; returns whether the index moved. Acks are group-committed like sends.
        Raises ``UnknownMessage`` when the message is not in the account's inbox,
        ``InvalidField`` for a device name that does not fit.
        """
        ...

    async def list_index(
        self, tenant: str, account: str, device: str, after_message_id: int, limit: int
    ) -> IndexPage:
        """Inbox rows strictly after ``after_message_id``, oldest first, at most ``limit``.

        ``after_message_id == 0`` starts after the device's read index (from the start
        of the inbox when the device never acknowledged). Rows of messages the account
        deleted (``hide_message``) are left out, so a page may skip sequences. Paging
        with the last entry's message id until an empty page visits every row once.
        Raises ``UnknownMessage`` for a non-zero id not in the account's inbox,
        ``ValueError`` for ``limit < 1``.
        """
        ...

    async def is_sent(self, tenant: str, sender: str, client_msg_id: str) -> bool:
        """Whether a message of ``sender`` with this ``client_msg_id`` is stored (a
        committed send; one indexed read). A send that then stores it is a duplicate."""
        ...

    async def inbox_heads(self, tenant: str, accounts: Sequence[str]) -> dict[str, int]:
        """The sequence of the newest committed row of each account's inbox (0 when
        empty), by account. A row committed after this read gets a greater sequence:
        sequences are given out in commit order."""
        ...

    async def read_inbox(
        self, tenant: str, account: str, after_seq: int, limit: int
    ) -> list[InboxMessage]:
        """Inbox rows with a sequence greater than ``after_seq``, oldest first, at most
        ``limit``, each with its message's content (to push it again). Raises
        ``ValueError`` for ``limit < 1``."""
        ...

    async def get_contents(
        self, tenant: str, account: str, message_ids: Sequence[int]
    ) -> list[Content]:
        """The contents of ``message_ids`` in request order.

        Only messages in the account's own inbox are returned: other ids (unknown, or
        someone else's, or deleted by the account) are left out, and the caller reports
        them. A recalled message comes as its tombstone (``recalled``). An id requested
        twice is returned once, at its first position.
        """
        ...

    async def create_group(
        self,
        tenant: str,
        owner: str,
        name: str,
        avatar: str,
        introduction: str,
        members: Sequence[str],
        join_policy: JoinPolicy = JoinPolicy.INVITE,
    ) -> Group:
        """Create a group with a new random id (:func:`new_group_id`: not guessable); the
        owner is always a member, members deduped."""
        ...

    async def join_group(self, tenant: str, group_id: str, account: str) -> bool:
        """Add ``account``; False if it already was a member. Raises ``GroupNotFound``.

        A member gets a row for every group message stored after its join committed,
        none before (the join takes the group's lock, like a group send).
        """
        ...

    async def quit_group(self, tenant: str, group_id: str, account: str) -> bool:
        """Remove ``account``; False if it was not a member. Raises ``GroupNotFound``.

        The owner may quit too; the group and its owner field stay.
        """
        ...

    async def get_group(self, tenant: str, group_id: str) -> Group:
        """The group with its members. Raises ``GroupNotFound``."""
        ...

    async def members(self, tenant: str, group_id: str) -> list[Member]:
        """The members, by join time then account. Raises ``GroupNotFound``."""
        ...

    async def is_member(self, tenant: str, group_id: str, account: str) -> bool:
        """Whether ``account`` is a member (False when the group does not exist)."""
        ...

    async def aclose(self) -> None:
        """Finish queued writes, then release connections. Idempotent."""
        ...


def check_id(what: str, value: str) -> None:
    """Raise ``InvalidField`` unless ``value`` is a non-empty id that fits its column.

    Trailing spaces are refused: MySQL compares strings padded with spaces, so "bob "
    would be the same key as "bob" there but not in memory.
    """
    if not value:
        raise InvalidField(f"{what} must not be empty")
    _check_key(what, value, ID_LENGTH)


def _check_key(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidField(f"{what} is longer than {limit} characters")
    if value.endswith(" "):
        raise InvalidField(f"{what} must not end with a space")


def check_length(what: str, value: str, limit: int) -> None:
    """Raise ``InvalidField`` when ``value`` is longer than ``limit`` characters."""
    if len(value) > limit:
        raise InvalidField(f"{what} is longer than {limit} characters")


def check_message(
    tenant: str, sender: str, type: int, body: bytes, extra: str, client_msg_id: str | None
) -> None:
    """Validate the fields every send shares (before it is queued)."""
    check_id("tenant", tenant)
    check_id("sender", sender)
    if not -(2**31) <= type < 2**31:
        raise InvalidField("type must fit in 32 bits")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidField(f"body is larger than {MAX_BODY_BYTES} bytes")
    check_length("extra", extra, EXTRA_LENGTH)
    if client_msg_id is not None:
        check_id("client_msg_id", client_msg_id)


def check_device(device: str) -> None:
    """Raise ``InvalidField`` for a device name that does not fit (it may be empty)."""
    _check_key("device", device, DEVICE_LENGTH)


def check_group_fields(name: str, avatar: str, introduction: str) -> None:
    """Validate a group's descriptive fields."""
    check_length("name", name, GROUP_NAME_LENGTH)
    check_length("avatar", avatar, AVATAR_LENGTH)
    check_length("introduction", introduction, INTRODUCTION_LENGTH)


def check_changes(changes: GroupChanges) -> None:
    """Validate the fields an ``update_group`` sets."""
    if changes.name is not None:
        if not changes.name:
            raise InvalidField("a group needs a name")
        check_length("name", changes.name, GROUP_NAME_LENGTH)
    if changes.announcement is not None:
        check_length("announcement", changes.announcement, ANNOUNCEMENT_LENGTH)


def check_application(message: str) -> None:
    """Validate an application's message."""
    check_length("message", message, APPLICATION_LENGTH)


GROUP_ID_BYTES = 15
"""120 random bits per group id (the issue asks for at least 96)."""


def new_group_id() -> str:
    """A new group id: 120 bits from the OS's CSPRNG, URL-safe base64 (20 characters).

    Not derived from time or a counter, so ids cannot be guessed or enumerated; ids made
    before (decimal snowflakes) keep working, they are only strings to the store.
    """
    return secrets.token_urlsafe(GROUP_ID_BYTES)


def unique_members(owner: str, members: Sequence[str]) -> list[str]:
    """The owner first, then ``members`` in order, each once (all checked)."""
    seen: dict[str, None] = {owner: None}
    for account in members:
        check_id("member", account)
        seen.setdefault(account, None)
    return list(seen)


def first_occurrences(message_ids: Sequence[int]) -> list[int]:
    """``message_ids`` without repeats, each at its first position."""
    return list(dict.fromkeys(message_ids))
