"""What the SDK hands to applications: messages, send receipts, events, groups.

All are frozen, slotted dataclasses. Times are milliseconds since the unix epoch, as the
server sends them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(enum.IntEnum):
    """Which way a message went, seen from this account."""

    RECEIVED = 0
    SENT = 1


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    ``to`` is the receiving account of a 1:1 message (empty for a group message, and for
    a message sent from another device of ours when the server did not say to whom);
    ``group`` the group id of a group message. ``seq`` is the group's sequence number
    (0 for 1:1 messages, and for group messages that came through offline sync before
    any push of that group told the client where the sequence stands).
    ``client_msg_id`` is empty for messages that came through offline sync.
    ``inbox_seq`` is the message's sequence in this account's inbox when the server said
    (offline sync always does, 1:1 pushes do from servers with the extension; 0 else).
    ``recalled``: a tombstone -- the sender took the message back, ``body`` is empty.

    ``content_loaded`` is False for a message that offline sync delivered from the
    inbox index alone (the default ``ClientOptions(content="lazy")``): its id, sender,
    receiver or group, time and inbox sequence are real, but ``type``, ``body`` and
    ``extra`` are empty (0, "", "") and ``recalled`` is not known yet. Load the content
    with :meth:`Client.load_contents` or :meth:`Client.open_conversation`, which return
    the message again with ``content_loaded`` True (and keep it in the store). Pushed
    messages, our own sends and history pages always come loaded.
    """

    message_id: int
    sender: str
    to: str
    group: str
    type: int
    body: str
    extra: str
    send_time: int
    seq: int = 0
    client_msg_id: str = ""
    direction: Direction = Direction.RECEIVED
    inbox_seq: int = 0
    recalled: bool = False
    content_loaded: bool = True

    @property
    def peer(self) -> str:
        """The conversation this message belongs to: the group id of a group message,
        else the other account ("" for our own message whose receiver is not known)."""
        if self.group:
            return self.group
        return self.to if self.direction == Direction.SENT else self.sender

    @property
    def is_group(self) -> bool:
        """Whether this is a group message."""
        return bool(self.group)


@dataclass(frozen=True, slots=True)
class Sent:
    """The server's receipt for a message: it is stored (committed) under this id.

    ``seq`` is the group's sequence number of a group message (0 for 1:1 messages, and
    from servers that do not send ``MessageResp.seq``).
    """

    message_id: int
    send_time: int
    client_msg_id: str
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    """A group member; ``join_time`` in ms since the epoch. ``admin``: an admin of the
    group (the owner is ``GroupInfo.owner``); ``muted``: its talks are refused."""

    account: str
    alias: str
    avatar: str
    join_time: int
    admin: bool = False
    muted: bool = False


class JoinPolicy(enum.StrEnum):
    """Who may become a member of a group (``Client.create_group``, ``Groups.update``)."""

    INVITE = "invite"
    """Only the owner and admins add members. The default of a new group."""
    OPEN = "open"
    """Any account of the tenant joins itself."""
    APPROVAL = "approval"
    """Accounts apply (``Groups.apply``); the owner or an admin approves."""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group's detail."""

    group_id: str
    name: str
    avatar: str
    introduction: str
    owner: str
    created_at: int
    members: tuple[Member, ...]
    announcement: str = ""
    join_policy: JoinPolicy = JoinPolicy.INVITE
    muted: bool = False
    """The whole group is muted (the owner and admins may still talk)."""


@dataclass(frozen=True, slots=True)
class Application:
    """A pending application to join an approval group."""

    account: str
    message: str
    applied_at: int


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The client logged in again after losing its connection, and will re-sync."""

    account: str
    channel_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended; ``code``/``reason`` from the close frame (1006 if none).

    ``will_reconnect`` is False after a kickout, a refused relogin or ``aclose``.
    """

    code: int
    reason: str
    will_reconnect: bool


@dataclass(frozen=True, slots=True)
class KickedOut:
    """The same account logged in on the same device elsewhere. The client stops and
    does not reconnect."""

    channel_id: str


@dataclass(frozen=True, slots=True)
class GroupEvent:
    """A group notification: ``kind`` is "created", "joined" or "quit"; ``accounts``
    are the members of a new group or the account that joined or quit.

    Group administration adds the kinds "dismissed", "transferred" (``accounts``: the
    new owner, then the old), "updated" (``detail``: the join policy), "admin" /
    "unadmin", "muted" / "unmuted" (``accounts`` empty: the whole group), "applied"
    (``detail``: the applicant's message), "approved" and "refused"; ``by`` is the
    account that made the change."""

    kind: str
    group_id: str
    accounts: tuple[str, ...]
    by: str = ""
    detail: str = ""


class ConversationKind(enum.IntEnum):
    """A conversation with one peer account, or a group's."""

    USER = 0
    GROUP = 1


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation of this account, as the server's list has it.

    ``peer`` is the other account (``USER``) or the group id (``GROUP``). ``last_*``
    describe the newest message, ``preview`` the start of its body ("" once recalled).
    ``unread`` counts the messages from others after the account's read position (the
    same on every device of the account); ``read_message_id`` is that position (0: never
    read). ``last_seq`` orders the list (pass it to page on).
    """

    kind: ConversationKind
    peer: str
    last_message_id: int
    last_sender: str
    last_time: int
    last_type: int
    preview: str
    unread: int
    read_message_id: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """Conversations, newest activity first; ``has_more`` when older ones follow."""

    conversations: tuple[Conversation, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A conversation's messages, newest first (tombstones included: ``recalled``);
    ``has_more`` when older ones follow (page on with the last message's id)."""

    messages: tuple[Message, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ReadCount:
    """How many of a group message's other members have read it, of how many."""

    read: int
    members: int


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """``reader`` read conversation (``kind``, ``peer``, from the reader's view) up to
    ``message_id``.

    When ``reader`` is this account, another of its devices read: ``unread`` is what is
    left. Otherwise it is a read receipt of a 1:1 conversation: the peer ``reader`` has
    read our messages up to ``message_id``.
    """

    reader: str
    kind: ConversationKind
    peer: str
    message_id: int
    unread: int


@dataclass(frozen=True, slots=True)
class RecallEvent:
    """Message ``message_id`` of ``sender`` (of ``group``, or 1:1 when empty) was
    recalled by ``recalled_by`` (the sender, the group's owner or an admin): show a tombstone."""

    message_id: int
    sender: str
    group: str
    recalled_at: int
    recalled_by: str = ""


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A followed account (:meth:`Client.subscribe_presence`) came online (its first
    device) or went offline (its last device gone). ``at`` is when the server saw the
    change, ms since the epoch; 0 for the state read after a reconnect (the SDK
    re-subscribes and reports every followed account's state then)."""

    account: str
    online: bool
    at: int


@dataclass(frozen=True, slots=True)
class Typing:
    """``account`` is typing (or, with ``stopped``, stopped typing) to us, or in
    ``group`` when that is set. Never stored; a client shows it for a few seconds."""

    account: str
    group: str
    stopped: bool


Event = (
    Reconnected
    | Disconnected
    | KickedOut
    | GroupEvent
    | ReadEvent
    | RecallEvent
    | PresenceChanged
    | Typing
)
