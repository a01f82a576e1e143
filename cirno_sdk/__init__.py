"""cirno_sdk: the asyncio Python client of cirno-im.

    async with Client("ws://127.0.0.1:8000/", token, device="laptop") as client:
        await client.send("bob", "hello")
        async for message in client.messages():
            print(message.sender, message.body)

The client connects over WebSocket (``ws://``) or TCP (``tcp://host:port``) -- to one
URL, a list of gateways it rotates through, or wherever a resolver such as
:func:`route_resolver` (the control plane's ``GET /v1/route``) says -- logs in,
syncs what it missed (index pages; message bodies load when a conversation is
opened or messages are read: ``Client.open_conversation``, ``Client.load_contents``),
delivers every message once and in order, acks in batches, pings,
and reconnects with back-off (resending unconfirmed messages with their original
``client_msg_id``). It imports nothing from the server but the wire codec.
"""

from __future__ import annotations

from cirno_sdk.backoff import Backoff
from cirno_sdk.client import SDK_VERSION, Client, PushPlatform
from cirno_sdk.errors import (
    CirnoError,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    DeadlineExceeded,
    KickedOut,
    LoginRefused,
    RateLimited,
    RequestRefused,
    RequestTimeout,
    SendRefused,
    StatusError,
)
from cirno_sdk.groups import Groups
from cirno_sdk.models import (
    Application,
    Conversation,
    ConversationKind,
    ConversationPage,
    Direction,
    Disconnected,
    Event,
    GroupEvent,
    GroupInfo,
    HistoryPage,
    JoinPolicy,
    Member,
    Message,
    PresenceChanged,
    ReadCount,
    ReadEvent,
    RecallEvent,
    Reconnected,
    Sent,
    Typing,
)
from cirno_sdk.models import KickedOut as KickedOutEvent
from cirno_sdk.options import ClientOptions, ContentMode
from cirno_sdk.store import MemoryStore, SqliteStore, Store
from cirno_sdk.targets import Resolver, Target, route_resolver

__all__ = [
    "SDK_VERSION",
    "Application",
    "Backoff",
    "CirnoError",
    "Client",
    "ClientClosed",
    "ClientOptions",
    "ConnectFailed",
    "ConnectionLost",
    "ContentMode",
    "Conversation",
    "ConversationKind",
    "ConversationPage",
    "DeadlineExceeded",
    "Direction",
    "Disconnected",
    "Event",
    "GroupEvent",
    "GroupInfo",
    "Groups",
    "HistoryPage",
    "JoinPolicy",
    "KickedOut",
    "KickedOutEvent",
    "LoginRefused",
    "Member",
    "MemoryStore",
    "Message",
    "PresenceChanged",
    "PushPlatform",
    "RateLimited",
    "ReadCount",
    "ReadEvent",
    "RecallEvent",
    "Reconnected",
    "RequestRefused",
    "RequestTimeout",
    "Resolver",
    "SendRefused",
    "Sent",
    "SqliteStore",
    "StatusError",
    "Store",
    "Target",
    "Typing",
    "route_resolver",
]
