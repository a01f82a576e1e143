"""Enumerations of the client protocol (docs/protocol.md).

The numeric values are the wire contract and are never renumbered. :class:`Flag`,
:class:`MetaType` and :class:`Status` mirror the enums of ``protocol.proto``;
``tests/wire`` checks that the two agree.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Command(StrEnum):
    """The ``Header.command`` strings. Unknown commands stay plain ``str`` on decode."""

    LOGIN_SIGNIN = "login.signin"
    LOGIN_SIGNOUT = "login.signout"
    CHAT_USER_TALK = "chat.user.talk"
    CHAT_GROUP_TALK = "chat.group.talk"
    CHAT_TALK_ACK = "chat.talk.ack"
    CHAT_OFFLINE_INDEX = "chat.offline.index"
    CHAT_OFFLINE_CONTENT = "chat.offline.content"
    CHAT_GROUP_CREATE = "chat.group.create"
    CHAT_GROUP_JOIN = "chat.group.join"
    CHAT_GROUP_QUIT = "chat.group.quit"
    CHAT_GROUP_DETAIL = "chat.group.detail"
    CHAT_GROUP_MEMBERS = "chat.group.members"
    CHAT_CONVERSATION_LIST = "chat.conversation.list"
    CHAT_HISTORY = "chat.history"
    CHAT_READ = "chat.read"
    CHAT_READ_COUNT = "chat.read.count"
    CHAT_RECALL = "chat.recall"
    CHAT_DELETE = "chat.delete"
    PUSH_REGISTER = "push.register"
    PUSH_UNREGISTER = "push.unregister"
    PRESENCE_SUBSCRIBE = "presence.subscribe"
    PRESENCE_UNSUBSCRIBE = "presence.unsubscribe"
    CHAT_TYPING = "chat.typing"
    # cirno extensions: group administration (docs/protocol.md, "Group administration")
    CHAT_GROUP_DISMISS = "chat.group.dismiss"
    CHAT_GROUP_TRANSFER = "chat.group.transfer"
    CHAT_GROUP_UPDATE = "chat.group.update"
    CHAT_GROUP_ADMIN = "chat.group.admin"
    CHAT_GROUP_MUTE = "chat.group.mute"
    CHAT_GROUP_APPLY = "chat.group.apply"
    CHAT_GROUP_APPROVE = "chat.group.approve"
    CHAT_GROUP_APPLICATIONS = "chat.group.applications"


class Status(IntEnum):
    """``Header.status`` codes.

    kim's codes:

    ===================  ====  ==============================================
    SUCCESS                 0  the request succeeded
    NO_DESTINATION        100  missing or unknown ``dest``
    INVALID_PACKET_BODY   101  the body does not parse as the command's message
    INVALID_COMMAND       103  unknown command
    UNAUTHORIZED          105  bad or expired token; the connection then closes
    SYSTEM_EXCEPTION      300  unexpected server error
    NOT_IMPLEMENTED       301  known command that this server does not serve
    SESSION_NOT_FOUND     404  the session is gone: log in again
    ===================  ====  ==============================================

    cirno-im additions (never renumbered; also in ``protocol.proto``):

    ===================  ====  ==============================================
    FORBIDDEN             403  authenticated but not allowed (not a group member, ...)
    NOT_FOUND             410  the addressed group or message does not exist
    TOO_LARGE             413  body, member list or id list over the configured limit
    RATE_LIMITED          429  message rate over the tenant quota: slow down
    QUOTA_EXCEEDED        430  the tenant's connection quota is used up
    EXPIRED               440  the action's time window has passed (a late recall)
    UNAVAILABLE           503  storage or logic node unavailable: retry later
    ===================  ====  ==============================================

    ``LogicPacket.status`` is a plain ``int`` because peers may send codes not listed here.
    """

    SUCCESS = 0
    NO_DESTINATION = 100
    INVALID_PACKET_BODY = 101
    INVALID_COMMAND = 103
    UNAUTHORIZED = 105
    SYSTEM_EXCEPTION = 300
    NOT_IMPLEMENTED = 301
    SESSION_NOT_FOUND = 404
    FORBIDDEN = 403
    NOT_FOUND = 410
    TOO_LARGE = 413
    RATE_LIMITED = 429
    QUOTA_EXCEEDED = 430
    EXPIRED = 440
    UNAVAILABLE = 503


class Flag(IntEnum):
    """``Header.flag``: what a LogicPkt is."""

    REQUEST = 0
    RESPONSE = 1
    PUSH = 2


class MetaType(IntEnum):
    """``Meta.type``: how the string ``Meta.value`` is to be read."""

    INT = 0
    STRING = 1
    FLOAT = 2


class Opcode(IntEnum):
    """Opcode of a TCP frame (``u8 opcode | u32 length | payload``)."""

    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class BasicCode(IntEnum):
    """``code`` of a BasicPkt. A ping is answered with a pong."""

    PING = 1
    PONG = 2


class MessageType(IntEnum):
    """``MessageReq.type`` / ``MessagePush.type`` / ``MessageContent.type``."""

    TEXT = 1
    IMAGE = 2
    VOICE = 3
    VIDEO = 4
