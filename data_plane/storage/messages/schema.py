"""SQLAlchemy Core tables of the message store (content, inboxes, read indexes, groups).

Write diffusion: ``messages`` holds each message's content once; ``inbox`` holds one
index row per account that sees the message (receiver and sender of a 1:1 message, every
member of a group), numbered by that inbox's own sequence kept in ``inbox_seq``. Clients
pull ``inbox`` by sequence and load content by message id; ``read_index`` remembers the
newest acknowledged message per device.

Every table carries ``tenant`` first in its keys, every string column has an explicit
length. On MySQL every table is InnoDB, utf8mb4 with the binary collation: accounts,
group ids and client message ids are case-sensitive identifiers, as in the memory and
Redis backends.

The revisions in ``messages/migrations/versions`` (``m0001``, ``m0002g``, …) create the
same tables by hand; keep them in step (a test compares them with alembic autogenerate on
SQLite and MySQL).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

ID_LENGTH = 64
"""Length of tenant, account, group and client-message ids."""
DEVICE_LENGTH = 32
EXTRA_LENGTH = 4096
GROUP_NAME_LENGTH = 128
AVATAR_LENGTH = 512
INTRODUCTION_LENGTH = 1024
ANNOUNCEMENT_LENGTH = 1024
APPLICATION_LENGTH = 256
"""Length of the message an applicant sends with ``chat.group.apply``."""
MAX_BODY_BYTES = 16_777_215
"""Largest body MEDIUMBLOB holds (16 MiB - 1); the gateway's packet limit is far lower."""

MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

Body = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
"""BLOB on SQLite, MEDIUMBLOB (16 MiB) on MySQL, where plain BLOB stops at 64 KiB."""


def _id(name: str) -> Column[str]:
    return Column(name, String(ID_LENGTH), nullable=False)


messages = Table(
    "messages",
    metadata,
    Column("message_id", BigInteger, nullable=False, autoincrement=False),
    _id("tenant"),
    _id("sender"),
    _id("receiver"),
    _id("group_id"),
    Column("group_seq", BigInteger, nullable=False, server_default="0"),
    Column("type", Integer, nullable=False),
    Column("body", Body, nullable=False),
    Column("extra", String(EXTRA_LENGTH), nullable=False),
    Column("client_msg_id", String(ID_LENGTH), nullable=True),
    Column("send_time", BigInteger, nullable=False),
    Column("recalled_at", BigInteger, nullable=False, server_default="0"),
    # Nullable only so that the migration adds them without rewriting the table; every
    # send writes both, and the migration fills the existing rows.
    Column("conv_a", String(ID_LENGTH), nullable=True),
    Column("conv_b", String(ID_LENGTH), nullable=True),
    PrimaryKeyConstraint("message_id", name="pk_messages"),
    UniqueConstraint("tenant", "sender", "client_msg_id", name="uq_messages_client_msg_id"),
    Index("ix_messages_conversation", "tenant", "conv_a", "conv_b", "message_id"),
    **MYSQL_TABLE_OPTIONS,
)
"""Content, stored once. ``receiver`` is '' for group messages, ``group_id`` '' for 1:1.
``recalled_at`` is 0, or when the sender took the message back: body and extra are then
emptied (a tombstone). ``conv_a`` / ``conv_b`` name the message's conversation the same
from both sides — (group id, '') for a group message, the two accounts in code-point
order for a 1:1 one (``items.conversation_key``) — and ``ix_messages_conversation`` pages
one conversation by message id (``chat.history``): one index entry per message, not one
per inbox row."""

inbox = Table(
    "inbox",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("message_id", BigInteger, nullable=False),
    Column("direction", SmallInteger, nullable=False),
    _id("account_b"),
    _id("group_id"),
    Column("send_time", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "account", "seq", name="pk_inbox"),
    UniqueConstraint("tenant", "account", "message_id", name="uq_inbox_message_id"),
    **MYSQL_TABLE_OPTIONS,
)
"""One row per (account, message) the account sees, in the account's inbox order."""

inbox_seq = Table(
    "inbox_seq",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "account", name="pk_inbox_seq"),
    **MYSQL_TABLE_OPTIONS,
)
"""The last sequence given out in each inbox; its row is the inbox's write lock."""

read_index = Table(
    "read_index",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("device", String(DEVICE_LENGTH), nullable=False),
    Column("message_id", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "account", "device", name="pk_read_index"),
    **MYSQL_TABLE_OPTIONS,
)
"""The newest acknowledged message (and its inbox seq) per device; only moves forward."""

chat_groups = Table(
    "chat_groups",
    metadata,
    _id("tenant"),
    _id("group_id"),
    Column("name", String(GROUP_NAME_LENGTH), nullable=False),
    Column("avatar", String(AVATAR_LENGTH), nullable=False),
    Column("introduction", String(INTRODUCTION_LENGTH), nullable=False),
    _id("owner"),
    Column("created_at", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("announcement", String(ANNOUNCEMENT_LENGTH), nullable=False, server_default=text("''")),
    Column("join_policy", SmallInteger, nullable=False, server_default="0"),
    Column("muted", SmallInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("tenant", "group_id", name="pk_chat_groups"),
    **MYSQL_TABLE_OPTIONS,
)
"""Groups. ``seq`` is the last group sequence given out; its row is the group's lock.
``join_policy`` is a ``group_model.JoinPolicy`` (0: invite-only); ``muted`` 1 silences
every member but the owner and admins."""

group_members = Table(
    "group_members",
    metadata,
    _id("tenant"),
    _id("group_id"),
    _id("account"),
    Column("alias", String(ID_LENGTH), nullable=False),
    Column("avatar", String(AVATAR_LENGTH), nullable=False),
    Column("join_time", BigInteger, nullable=False),
    Column("role", SmallInteger, nullable=False, server_default="0"),
    Column("muted", SmallInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("tenant", "group_id", "account", name="pk_group_members"),
    Index("ix_group_members_account", "tenant", "account"),
    **MYSQL_TABLE_OPTIONS,
)
"""Group membership; the account index answers "which groups am I in". ``role`` is a
``group_model.Role`` (1: admin), ``muted`` 1 refuses the member's talks."""

group_applications = Table(
    "group_applications",
    metadata,
    _id("tenant"),
    _id("group_id"),
    _id("account"),
    Column("message", String(APPLICATION_LENGTH), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "group_id", "account", name="pk_group_applications"),
    **MYSQL_TABLE_OPTIONS,
)
"""Pending applications to approval groups (``chat.group.apply``), one per applicant."""

# -- outbound: webhook outbox and deliveries, push tokens and jobs --------------------
# Written by ``outbox`` (and ``sends`` through it, inside the send transaction); read by
# the logic node's dispatchers and the control plane's webhook routes.

EVENT_TYPE_LENGTH = 32
ENDPOINT_ID_LENGTH = 64
LEASE_NAME_LENGTH = 200
HOLDER_LENGTH = 128
ERROR_LENGTH = 512
PUSH_TOKEN_LENGTH = 512
PROVIDER_LENGTH = 16

AutoId = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-increment id: SQLite numbers only ``INTEGER PRIMARY KEY`` columns itself."""

event_outbox = Table(
    "event_outbox",
    metadata,
    Column("id", AutoId, nullable=False, autoincrement=True),
    _id("tenant"),
    Column("event_type", String(EVENT_TYPE_LENGTH), nullable=False),
    Column("endpoint_id", String(ENDPOINT_ID_LENGTH), nullable=False),
    Column("payload", Body, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("id", name="pk_event_outbox"),
    **MYSQL_TABLE_OPTIONS,
)
"""Events not yet fanned out to webhook endpoints, in commit order of their ids.
``endpoint_id`` is '' (every subscribed endpoint) or one endpoint (a test event)."""

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", AutoId, nullable=False, autoincrement=True),
    _id("tenant"),
    Column("endpoint_id", String(ENDPOINT_ID_LENGTH), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", String(EVENT_TYPE_LENGTH), nullable=False),
    Column("payload", Body, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Column("last_status_code", Integer, nullable=False),
    Column("last_error", String(ERROR_LENGTH), nullable=False),
    Column("latency_ms", Integer, nullable=False),
    PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    Index("ix_webhook_deliveries_endpoint", "tenant", "endpoint_id", "status", "id"),
    Index("ix_webhook_deliveries_status", "status", "next_attempt_at"),
    **MYSQL_TABLE_OPTIONS,
)
"""One row per (event, endpoint): the endpoint's queue (status 0, by id) and its
recent history (1 delivered, 2 failed), kept for the retention period."""

outbound_leases = Table(
    "outbound_leases",
    metadata,
    Column("name", String(LEASE_NAME_LENGTH), nullable=False),
    Column("holder", String(HOLDER_LENGTH), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("name", name="pk_outbound_leases"),
    **MYSQL_TABLE_OPTIONS,
)
"""Who delivers what: one row per lease name (the fan-out, one endpoint, the push queue)."""

push_tokens = Table(
    "push_tokens",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("device", String(DEVICE_LENGTH), nullable=False),
    Column("token", String(PUSH_TOKEN_LENGTH), nullable=False),
    Column("platform", String(PROVIDER_LENGTH), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant", "account", "device", name="pk_push_tokens"),
    **MYSQL_TABLE_OPTIONS,
)
"""A device's push token (one per (tenant, account, device); a new one replaces it)."""

push_jobs = Table(
    "push_jobs",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("device", String(DEVICE_LENGTH), nullable=False),
    Column("token", String(PUSH_TOKEN_LENGTH), nullable=False),
    Column("count", Integer, nullable=False),
    _id("sender"),
    _id("group_id"),
    Column("message_id", BigInteger, nullable=False),
    Column("preview", String(EXTRA_LENGTH), nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    PrimaryKeyConstraint("tenant", "account", "device", name="pk_push_jobs"),
    Index("ix_push_jobs_due", "due_at"),
    **MYSQL_TABLE_OPTIONS,
)
"""At most one pending notification per token: a burst collapses into its ``count``."""
PREVIEW_LENGTH = 64
"""Characters of a message body kept as its conversation's preview."""

conversations = Table(
    "conversations",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("kind", SmallInteger, nullable=False),
    _id("peer"),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_message_id", BigInteger, nullable=False),
    _id("last_sender"),
    Column("last_time", BigInteger, nullable=False),
    Column("last_type", Integer, nullable=False),
    Column("preview", String(PREVIEW_LENGTH), nullable=False),
    Column("received", BigInteger, nullable=False),
    Column("read_seq", BigInteger, nullable=False, server_default="0"),
    Column("read_message_id", BigInteger, nullable=False, server_default="0"),
    Column("read_received", BigInteger, nullable=False, server_default="0"),
    Column("read_group_seq", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("tenant", "account", "kind", "peer", name="pk_conversations"),
    Index("ix_conversations_recent", "tenant", "account", "last_seq"),
    **MYSQL_TABLE_OPTIONS,
)
"""One row per (account, conversation): ``kind`` 0 is a 1:1 peer, 1 a group.

Written by the send writer in the same transaction as the inbox rows: the last message
(``last_seq`` is its inbox sequence, so ordering by it is newest activity first) and
``received``, how many messages from others the conversation ever got. A read stores
the read message's inbox sequence and ``read_received``, the value ``received`` had up
to it, so the unread count is ``received - read_received``: no inbox scan.
``read_group_seq`` is the read message's group sequence (groups), which members' read
positions are compared by."""

hidden_messages = Table(
    "hidden_messages",
    metadata,
    _id("tenant"),
    _id("account"),
    Column("message_id", BigInteger, nullable=False, autoincrement=False),
    PrimaryKeyConstraint("tenant", "account", "message_id", name="pk_hidden_messages"),
    **MYSQL_TABLE_OPTIONS,
)
"""Messages an account deleted for itself (``chat.delete``): left out of its reads."""
