"""The tenants' server API for groups: create, dismiss, add and remove members
(``/v1/tenants/{tenant_id}/groups…``).

Each call runs, on a logic node, the handler a client's ``chat.group.*`` request runs,
acting as the group's owner: members get the same notifies (``chat.group.create``,
``…join``, ``…quit``, ``…dismiss`` pushes) and the same webhooks (``group.created``,
``group.members_changed``, ``group.dismissed``) as when the owner does it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from control_plane.db import SessionDep
from control_plane.deps import CredentialDep, NowDep, SettingsDep
from control_plane.models.server_api import (
    ID_MAX,
    ID_PATTERN,
    GroupCreate,
    GroupCreated,
    GroupMembersChange,
)
from control_plane.routes import error_responses
from control_plane.routes.secrets import authorize_tenant
from control_plane.routes.tenants import TenantIdPath
from control_plane.server_calls import LOGIC_ERRORS, ask_logic
from data_plane.cluster import server_api as api
from data_plane.cluster.identity import SYSTEM_SENDER

router = APIRouter(prefix="/v1/tenants/{tenant_id}/groups", tags=["server API"])

GroupPath = Annotated[
    str, Path(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN, description="The group id.")
]
POLICIES = {"invite": 0, "open": 1, "approval": 2}
BAD_BODY = error_responses(
    e400="The body cannot be decoded (not UTF-8 JSON).",
    e413="The body is larger than `CIRNO_CONTROL_MAX_BODY`.",
)
GROUP_ERRORS = {
    **LOGIC_ERRORS,
    **error_responses(
        e404="No tenant has this id (admin only; others get 403), or no group has this id."
    ),
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a group",
    operation_id="tenants-groups-create",
    responses={**LOGIC_ERRORS, **BAD_BODY},
)
def create_group(
    tenant_id: TenantIdPath,
    body: GroupCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> GroupCreated:
    """Create a group owned by `owner` with `members`, as the owner's `chat.group.create`
    would: its online members get the create notify, `group.created` is recorded."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    payload = {
        "owner": body.owner,
        "name": body.name,
        "avatar": body.avatar,
        "introduction": body.introduction,
        "members": body.members,
        "join_policy": POLICIES[body.join_policy],
    }
    answer = ask_logic(request, session, now, tenant_id, api.GROUP_CREATE, SYSTEM_SENDER, payload)
    return GroupCreated.model_validate(answer)


@router.delete(
    "/{group}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Dismiss a group",
    operation_id="tenants-groups-dismiss",
    responses=GROUP_ERRORS,
)
def dismiss_group(
    tenant_id: TenantIdPath,
    group: GroupPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> None:
    """Dismiss the group as its owner would: every member gets the dismiss notify,
    `group.dismissed` is recorded."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    payload = {"group": group}
    ask_logic(request, session, now, tenant_id, api.GROUP_DISMISS, SYSTEM_SENDER, payload)


@router.post(
    "/{group}/members",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Add group members",
    operation_id="tenants-groups-members-add",
    responses={**GROUP_ERRORS, **BAD_BODY},
)
def add_members(
    tenant_id: TenantIdPath,
    group: GroupPath,
    body: GroupMembersChange,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> None:
    """Add `accounts` as the owner's invites would, whatever the join policy: the
    members get a join notify per new member, `group.members_changed` is recorded for
    each. Accounts already members change nothing."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    payload = {"group": group, "accounts": body.accounts}
    ask_logic(request, session, now, tenant_id, api.GROUP_ADD, SYSTEM_SENDER, payload)


@router.delete(
    "/{group}/members",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove group members",
    operation_id="tenants-groups-members-remove",
    responses={**GROUP_ERRORS, **BAD_BODY},
)
def remove_members(
    tenant_id: TenantIdPath,
    group: GroupPath,
    body: GroupMembersChange,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> None:
    """Remove `accounts` as the owner would: the members (the removed one included) get
    a quit notify per removal, `group.members_changed` is recorded for each. The owner
    cannot be removed (403: transfer or dismiss); accounts not members change nothing.
    Removals are made in order: a refusal stops the call, earlier removals stay made."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    payload = {"group": group, "accounts": body.accounts}
    ask_logic(request, session, now, tenant_id, api.GROUP_REMOVE, SYSTEM_SENDER, payload)
