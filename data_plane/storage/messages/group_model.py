"""The group-administration vocabulary of the message store: join policies, roles,
what a caller may do in a group (``Access``), changes and join applications.

The owner is the group row's ``owner``; ``Role`` is the role of every other member
(the owner's own member row keeps ``MEMBER``). Numeric values are stored in the
database and sent on the wire (``protocol.proto``'s ``JoinPolicy``): never renumber.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JoinPolicy(enum.IntEnum):
    """Who may become a member. ``INVITE`` (0) is the default of a new group."""

    INVITE = 0
    """Only the owner and admins add members (``chat.group.join`` naming them)."""
    OPEN = 1
    """Anyone of the tenant joins with ``chat.group.join``."""
    APPROVAL = 2
    """Anyone applies (``chat.group.apply``); the owner or an admin approves."""


class Role(enum.IntEnum):
    """A member's role besides ownership."""

    MEMBER = 0
    ADMIN = 1


@dataclass(frozen=True, slots=True)
class Access:
    """What the group says about one account, read in one query.

    ``member`` is False for a non-member; ``role`` and ``muted`` are then ``MEMBER`` and
    False. ``group_muted`` is the whole-group mute (owner and admins are exempt).
    """

    owner: str
    join_policy: JoinPolicy
    group_muted: bool
    member: bool
    role: Role
    muted: bool

    def manages(self, account: str) -> bool:
        """Whether ``account`` (the account this was read for) is the owner or an admin."""
        return self.member and (account == self.owner or self.role == Role.ADMIN)

    def may_talk(self, account: str) -> bool:
        """A member not muted, and not silenced by a whole-group mute (managers are exempt)."""
        if not self.member or self.muted:
            return False
        return not self.group_muted or self.manages(account)


@dataclass(frozen=True, slots=True)
class GroupChanges:
    """A ``update_group`` request: ``None`` leaves a field as it is."""

    name: str | None = None
    announcement: str | None = None
    join_policy: JoinPolicy | None = None
    muted: bool | None = None


@dataclass(frozen=True, slots=True)
class Application:
    """A pending request to join an approval group; ``applied_at`` in ms since the epoch."""

    account: str
    message: str
    applied_at: int
