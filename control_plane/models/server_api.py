"""Bodies and answers of the tenants' server API (``control_plane.routes.server_api``).

Plain pydantic models: nothing here is stored by the control plane (the logic node
stores messages and groups in the tenant's message database). Every field is bounded;
the logic node checks the same rules again (``data_plane.logic.server_api``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from data_plane.cluster import server_api as api
from data_plane.cluster.identity import ACCOUNT_MAX_LENGTH, ACCOUNT_PATTERN, ACCOUNT_RULE

ID_MAX = 64
"""Longest group id and client message id (the message database's id columns)."""
ID_PATTERN = r"^[^\s\x00-\x1f\x7f]{1,64}$"
BODY_MAX = 64 * 1024
"""Characters of a message body: what a client packet can carry with room to spare (the
logic node still refuses a message whose push would not fit a client packet: 413)."""
EXTRA_MAX = 4096
GROUP_NAME_MAX = 128
GROUP_TEXT_MAX = 1024
MEMBERS_MAX = 1000
"""Members one create names (more join with ``POST …/members``, 500 a call)."""

AccountName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=ACCOUNT_MAX_LENGTH,
        pattern=ACCOUNT_PATTERN,
        description=f"An account: {ACCOUNT_RULE}.",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageSend(_Strict):
    """Body of ``POST /v1/tenants/{tenant_id}/messages``: exactly one of ``to`` and
    ``group``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(
        default=None,
        alias="from",
        min_length=1,
        max_length=ACCOUNT_MAX_LENGTH,
        pattern=ACCOUNT_PATTERN,
        description="The sending account; absent: the tenant's system sender "
        f"`{api.SYSTEM_SENDER}`, which no client can sign in as.",
    )
    to: str | None = Field(
        default=None,
        min_length=1,
        max_length=ACCOUNT_MAX_LENGTH,
        pattern=ACCOUNT_PATTERN,
        description="The receiving account (a 1:1 message).",
    )
    group: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX,
        pattern=ID_PATTERN,
        description="The group (a group message); a `from` account must be a member.",
    )
    type: int = Field(default=1, ge=-(2**31), le=2**31 - 1, description="Message type.")
    body: str = Field(default="", max_length=BODY_MAX, description="Message body.")
    extra: str = Field(default="", max_length=EXTRA_MAX, description="Extra data.")
    client_msg_id: str = Field(
        min_length=1,
        max_length=ID_MAX,
        pattern=ID_PATTERN,
        description="Idempotency id, per sender: a repeated call stores nothing and "
        "answers the first call's message.",
    )

    @model_validator(mode="after")
    def _one_destination(self) -> MessageSend:
        if (self.to is None) == (self.group is None):
            raise ValueError("give exactly one of to and group")
        return self


class MessageSent(BaseModel):
    """The stored message (the first call's, for a repeated `client_msg_id`)."""

    message_id: int
    send_time: int = Field(description="Milliseconds since the epoch.")
    seq: int = Field(description="The group sequence of a group message, else 0.")


class DevicePresence(BaseModel):
    """One live device of an account."""

    device: str
    gateway: str = Field(description="The gateway holding the connection.")
    login_at: int = Field(description="Milliseconds since the epoch.")
    client_version: str = Field(description='"" for a kim client.')


class AccountPresence(BaseModel):
    """One account asked about."""

    account: str
    online: bool
    devices: list[DevicePresence]


class PresencePublic(BaseModel):
    """The accounts asked about, in the order asked (duplicates once)."""

    accounts: list[AccountPresence]


class KickCreate(_Strict):
    """Body of ``POST /v1/tenants/{tenant_id}/accounts/{account}/kick`` (may be empty)."""

    device: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX,
        description="Only this device's connection; absent: every device.",
    )
    reason: str = Field(
        default="",
        max_length=api.MAX_REASON_LENGTH,
        description="Shown to the client in its `KickoutNotify`.",
    )


class Kicked(BaseModel):
    """How many live connections were told to close."""

    kicked: int


class GroupCreate(_Strict):
    """Body of ``POST /v1/tenants/{tenant_id}/groups``."""

    owner: str = Field(
        min_length=1,
        max_length=ACCOUNT_MAX_LENGTH,
        pattern=ACCOUNT_PATTERN,
        description="The owner (always a member).",
    )
    name: str = Field(min_length=1, max_length=GROUP_NAME_MAX)
    avatar: str = Field(default="", max_length=GROUP_TEXT_MAX)
    introduction: str = Field(default="", max_length=GROUP_TEXT_MAX)
    members: list[AccountName] = Field(
        default_factory=list, max_length=MEMBERS_MAX, description="Other members."
    )
    join_policy: Literal["invite", "open", "approval"] = Field(
        default="invite", description="Who may join: invited only, anyone, or on approval."
    )


class GroupCreated(BaseModel):
    """The new group."""

    group_id: str


class GroupMembersChange(_Strict):
    """Body of ``POST`` / ``DELETE /v1/tenants/{tenant_id}/groups/{group}/members``."""

    accounts: list[AccountName] = Field(min_length=1, max_length=api.MAX_GROUP_CHANGE)


class HistoryMessage(BaseModel):
    """One row of an account's inbox with its message."""

    seq: int = Field(description="The row's sequence in the account's inbox.")
    message_id: int
    direction: Literal["sent", "received"]
    peer: str = Field(description="The other account (the sender of a group message).")
    group: str = Field(description='The group of a group message, else "".')
    group_seq: int
    send_time: int
    type: int
    body: str = Field(description='"" for a recalled message.')
    extra: str
    client_msg_id: str
    recalled: bool = Field(description="A tombstone: the message was recalled.")


class HistoryPage(BaseModel):
    """A page of an account's inbox, oldest first."""

    messages: list[HistoryMessage]
    next_after_seq: int = Field(description="Pass as `after_seq` for the next page.")
    has_more: bool
