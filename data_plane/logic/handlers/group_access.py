"""Who may do what in a group: the checks every ``chat.group.*`` handler shares.

Visibility. A group is visible only to its members: to anyone else, a group that exists
and one that does not get the same answer, NotFound (410) with the same text
(:func:`hidden`), on every command — detail, members, talk, quit, join, apply, and the
administration commands — so group ids cannot be probed. Two exceptions follow from the
owner's choice: an open group admits a ``chat.group.join``, an approval group a
``chat.group.apply``, from anyone of the tenant (which tells that it exists).

Roles. The owner (one account, ``Access.owner``) and the admins manage the group
(add and remove members, mute, update, approve); only the owner dismisses, transfers,
and appoints admins. A refusal to a member names the rule, with Forbidden (403).
"""

from __future__ import annotations

from data_plane.logic.context import Request
from data_plane.logic.refusal import Refused
from data_plane.storage.messages.group_model import Access, JoinPolicy
from data_plane.storage.messages.protocol import MessageStore
from data_plane.wire import Status


def hidden(group_id: str) -> Refused:
    """The one answer for "no such group" and "not a member" (NotFound, 410)."""
    return Refused(
        Status.NOT_FOUND, f"group {group_id!r} does not exist or you are not a member of it"
    )


def join_policy_of(value: int) -> JoinPolicy:
    """A wire ``JoinPolicy``; InvalidPacketBody for a value this server does not know."""
    try:
        return JoinPolicy(value)
    except ValueError:
        raise Refused(Status.INVALID_PACKET_BODY, f"unknown join policy {value}") from None


def group_id_of(value: str) -> str:
    """A request's group id; InvalidPacketBody when it is empty."""
    if not value:
        raise Refused(Status.INVALID_PACKET_BODY, "group_id is required")
    return value


async def member_access(store: MessageStore, request: Request, group_id: str) -> Access:
    """The caller's access to a group it is a member of, else :func:`hidden`."""
    access = await store.group_access(request.tenant, group_id, request.account)
    if access is None or not access.member:
        raise hidden(group_id)
    return access


def require_manager(access: Access, request: Request, action: str) -> None:
    """Forbidden unless the caller is the owner or an admin."""
    if not access.manages(request.account):
        raise Refused(Status.FORBIDDEN, f"only the owner or an admin may {action}")


def require_owner(access: Access, request: Request, action: str) -> None:
    """Forbidden unless the caller is the owner."""
    if access.owner != request.account:
        raise Refused(Status.FORBIDDEN, f"only the owner may {action}")


def require_talk(access: Access, request: Request) -> None:
    """Forbidden for a muted member, and for plain members of a muted group."""
    if access.muted:
        raise Refused(Status.FORBIDDEN, "you are muted in this group")
    if not access.may_talk(request.account):
        raise Refused(Status.FORBIDDEN, "the group is muted: only the owner and admins talk")


async def target_access(
    store: MessageStore, request: Request, group_id: str, account: str
) -> Access:
    """The access of ``account``, another member the caller acts on (NotFound, naming
    it, when it is not a member: the caller is one, so nothing is revealed)."""
    access = await store.group_access(request.tenant, group_id, account)
    if access is None:
        raise hidden(group_id)
    if not access.member:
        raise Refused(Status.NOT_FOUND, f"{account!r} is not a member of the group")
    return access
