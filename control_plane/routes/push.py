"""``/v1/tenants/{tenant_id}/push-provider`` and ``…/accounts/{account}/push-tokens``.

A tenant configures where offline notifications go (a generic HTTP endpoint or FCM's
HTTP v1 API); its backend may register and unregister devices' push tokens on their
behalf (devices do it themselves with ``push.register``). Open to an admin and to the
tenant's backend (its API key).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlmodel import Session

from control_plane import outbound_store
from control_plane.db import SessionDep
from control_plane.deps import CredentialDep, SettingsDep, unprocessable
from control_plane.models.common import Account
from control_plane.models.webhooks import (
    PRINTABLE,
    PushProvider,
    PushProviderKind,
    PushProviderPublic,
    PushProviderSet,
    PushTokenSet,
)
from control_plane.outbound_store import MessageDatabasesDep
from control_plane.routes import BAD_BODY, error_responses
from control_plane.routes.secrets import authorize_tenant
from control_plane.routes.tenants import TenantIdPath

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["push notifications"])

BACKEND_ERRORS = error_responses(
    e401="No bearer token and no `X-Api-Key`.",
    e403="Neither the admin token nor this tenant's API key.",
    e404="No such tenant (admin only; others get 403), or nothing to show or delete.",
)
AccountPath = Annotated[Account, Path(description="The account.")]


def _public(row: PushProvider) -> PushProviderPublic:
    return PushProviderPublic(
        kind=PushProviderKind(row.kind),
        url=row.url,
        project_id=row.project_id,
        collapse_ms=row.collapse_ms,
        has_auth_token=bool(row.auth_token),
    )


@router.put(
    "/push-provider",
    summary="Set the push provider",
    operation_id="push-provider-set",
    responses={**BACKEND_ERRORS, **BAD_BODY},
)
def set_provider(
    tenant_id: TenantIdPath,
    body: PushProviderSet,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
) -> PushProviderPublic:
    """Where notifications for offline receivers go (replacing an earlier setting).

    `http`: a JSON POST to `url` per notification. `fcm`: a POST in the FCM HTTP v1
    format to `{url}/v1/projects/{project_id}/messages:send` with `Authorization:
    Bearer {auth_token}`.
    """
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    if body.kind is PushProviderKind.FCM and not body.project_id:
        unprocessable("an fcm provider needs project_id", ("body", "project_id"))
    row = session.get(PushProvider, tenant_id) or PushProvider(
        tenant_id=tenant_id, kind="", url="", project_id="", auth_token="", collapse_ms=0
    )
    row.kind = body.kind.value
    row.url = str(body.url)
    row.project_id = body.project_id
    row.auth_token = body.auth_token
    row.collapse_ms = body.collapse_ms
    session.add(row)
    session.commit()
    return _public(row)


@router.get(
    "/push-provider",
    summary="Show the push provider",
    operation_id="push-provider-get",
    responses=BACKEND_ERRORS,
)
def get_provider(
    tenant_id: TenantIdPath, session: SessionDep, settings: SettingsDep, credential: CredentialDep
) -> PushProviderPublic:
    """The tenant's push provider, without its token."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = _provider_or_404(session, tenant_id)
    return _public(row)


@router.delete(
    "/push-provider",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the push provider",
    operation_id="push-provider-delete",
    responses=BACKEND_ERRORS,
)
def delete_provider(
    tenant_id: TenantIdPath, session: SessionDep, settings: SettingsDep, credential: CredentialDep
) -> None:
    """Stop sending notifications (tokens stay registered)."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = _provider_or_404(session, tenant_id)
    session.delete(row)
    session.commit()


@router.post(
    "/accounts/{account}/push-tokens",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Register a push token",
    operation_id="push-tokens-register",
    responses={**BACKEND_ERRORS, **BAD_BODY},
)
def register_token(
    tenant_id: TenantIdPath,
    account: AccountPath,
    body: PushTokenSet,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    databases: MessageDatabasesDep,
) -> None:
    """Register the device's push token (replacing its older one), as the device's
    own `push.register` would."""
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    engine = databases.engine_for(tenant)
    outbound_store.register_push_token(
        engine, tenant_id, account, body.device, body.token, body.platform
    )


@router.delete(
    "/accounts/{account}/push-tokens",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unregister a push token",
    operation_id="push-tokens-unregister",
    responses=BACKEND_ERRORS,
)
def unregister_token(
    tenant_id: TenantIdPath,
    account: AccountPath,
    device: Annotated[
        str, Query(min_length=1, max_length=32, pattern=PRINTABLE, description="The device.")
    ],
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    databases: MessageDatabasesDep,
) -> None:
    """Forget the device's push token and its pending notification."""
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    engine = databases.engine_for(tenant)
    if not outbound_store.unregister_push_token(engine, tenant_id, account, device):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no push token for this device")


def _provider_or_404(session: Session, tenant_id: str) -> PushProvider:
    """The tenant's push provider, or 404 "no push provider"."""
    row = session.get(PushProvider, tenant_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no push provider")
    return row
