"""``/v1/tenants/{tenant_id}/moderation``: a tenant's moderation hook.

Open to an admin and to the tenant's own backend (its API key). Logic nodes learn a
change from the tenant directory within ``CIRNO_TENANT_REFRESH_INTERVAL`` (1 s by
default); messages sent before that are checked by the previous setting. How the hook
is called and what it answers: docs/server_api.md, "Moderation hook".
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlmodel import Session

from control_plane.db import SessionDep
from control_plane.deps import CredentialDep, NowDep, SettingsDep
from control_plane.models import as_datetime
from control_plane.models.moderation import (
    ModerationPublic,
    ModerationSaved,
    ModerationSet,
    TenantModeration,
)
from control_plane.routes import BAD_BODY, error_responses
from control_plane.routes.secrets import authorize_tenant
from control_plane.routes.tenants import TenantIdPath
from control_plane.routes.webhooks import new_signing_secret

router = APIRouter(prefix="/v1/tenants/{tenant_id}/moderation", tags=["moderation"])

BACKEND_ERRORS = error_responses(
    e401="No bearer token and no `X-Api-Key`.",
    e403="Neither the admin token nor this tenant's API key.",
    e404="No such tenant (admin only; others get 403), or no hook to show or delete.",
)


def _public(row: TenantModeration) -> ModerationPublic:
    return ModerationPublic(
        url=row.url, deadline_ms=row.deadline_ms, fail_open=row.fail_open, updated_at=row.updated_at
    )


@router.put(
    "",
    summary="Set the moderation hook",
    operation_id="moderation-set",
    responses={**BACKEND_ERRORS, **BAD_BODY},
)
def set_moderation(
    tenant_id: TenantIdPath,
    body: ModerationSet,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> ModerationSaved:
    """Check every message the tenant's users send (1:1 and group) with a hook before it
    is stored: the hook allows it, rejects it (the sender gets Forbidden, 403, with the
    hook's reason) or replaces its body. Replaces an earlier setting.

    The signing secret is created by the first `PUT` (and by one with
    `rotate_secret: true`) and shown only in that answer; other updates keep it.
    """
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = session.get(TenantModeration, tenant_id)
    secret = new_signing_secret() if row is None or body.rotate_secret else None
    if row is None:
        row = TenantModeration(
            tenant_id=tenant_id, url="", secret="", deadline_ms=0, fail_open=True
        )
    if secret is not None:
        row.secret = secret
    row.url = str(body.url)
    row.deadline_ms = body.deadline_ms
    row.fail_open = body.fail_open
    row.updated_at = as_datetime(now)
    session.add(row)
    session.commit()
    session.refresh(row)
    return ModerationSaved(**_public(row).model_dump(), secret=secret)


@router.get(
    "",
    summary="Show the moderation hook",
    operation_id="moderation-get",
    responses=BACKEND_ERRORS,
)
def get_moderation(
    tenant_id: TenantIdPath, session: SessionDep, settings: SettingsDep, credential: CredentialDep
) -> ModerationPublic:
    """The tenant's moderation hook, without its secret."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = _hook_or_404(session, tenant_id)
    return _public(row)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the moderation hook",
    operation_id="moderation-delete",
    responses=BACKEND_ERRORS,
)
def delete_moderation(
    tenant_id: TenantIdPath, session: SessionDep, settings: SettingsDep, credential: CredentialDep
) -> None:
    """Store the tenant's messages unchecked again (once logic nodes refresh)."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = _hook_or_404(session, tenant_id)
    session.delete(row)
    session.commit()


def _hook_or_404(session: Session, tenant_id: str) -> TenantModeration:
    """The tenant's moderation hook, or 404 "no moderation hook"."""
    row = session.get(TenantModeration, tenant_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no moderation hook")
    return row
