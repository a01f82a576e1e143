"""``/v1/tenants/{tenant_id}/secrets``, ``/api-key`` and ``/tokens``.

Signing keys and the API key are admin business. User tokens can be minted by an admin
or by the tenant's own backend with its API key (`Authorization: Bearer <api key>` or
`X-Api-Key`); an API key never opens another tenant (403).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from control_plane.db import SessionDep
from control_plane.deps import (
    CredentialDep,
    NowDep,
    SettingsDep,
    api_key_hash,
    invalidate_routes,
    require_admin,
    secrets_equal,
)
from control_plane.keys import (
    add_key,
    all_keys,
    is_live,
    live_keys,
    mint_token,
    new_api_key,
    new_secret,
    token_expiry,
)
from control_plane.models import (
    SECRET_KID_MAX,
    ApiKeyCreated,
    SecretCreate,
    SecretCreated,
    SecretPublic,
    SecretsPublic,
    Tenant,
    TenantStatus,
    TokenCreate,
    TokenCreated,
    as_datetime,
    commit_change,
)
from control_plane.routes import ADMIN_ERRORS, BAD_BODY, error_responses
from control_plane.routes.tenants import NOT_FOUND, TenantIdPath, get_tenant_or_404

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["tenant keys"])
admin = [Depends(require_admin)]
ROTATION_RETRIES = 5
KidPath = Annotated[str, Path(min_length=1, max_length=SECRET_KID_MAX, description="Key id.")]


@router.post(
    "/secrets",
    status_code=status.HTTP_201_CREATED,
    summary="Rotate the signing secret",
    operation_id="tenants-secrets-rotate",
    dependencies=admin,
    responses={**ADMIN_ERRORS, **BAD_BODY, **NOT_FOUND},
)
def rotate_secret(
    tenant_id: TenantIdPath,
    body: SecretCreate,
    session: SessionDep,
    now: NowDep,
    request: Request,
) -> SecretCreated:
    """Add a new signing key (the next `kN`), used for tokens minted from now on.

    Every older key stays valid for `overlap_seconds` more (its `expires_at` is set, or
    kept when it is already earlier), so tokens already issued keep working while
    clients refresh them. The new secret is shown only in this answer.
    """
    get_tenant_or_404(session, tenant_id)
    secret = body.secret or new_secret()
    for _ in range(ROTATION_RETRIES):
        key = add_key(session, tenant_id, secret, now, body.overlap_seconds)
        try:
            commit_change(session)
        except IntegrityError:  # a concurrent rotation took the same kid
            session.rollback()
            continue
        invalidate_routes(request)
        return SecretCreated(kid=key.kid, secret=secret, created_at=key.created_at)
    raise HTTPException(status.HTTP_409_CONFLICT, detail="concurrent rotations, try again")


@router.get(
    "/secrets",
    summary="List signing keys",
    operation_id="tenants-secrets-list",
    dependencies=admin,
    responses={**ADMIN_ERRORS, **NOT_FOUND},
)
def list_secrets(tenant_id: TenantIdPath, session: SessionDep, now: NowDep) -> SecretsPublic:
    """Every stored key of the tenant, newest first, without the secrets."""
    get_tenant_or_404(session, tenant_id)
    moment = as_datetime(now)
    return SecretsPublic(
        data=[
            SecretPublic(
                kid=key.kid,
                created_at=key.created_at,
                expires_at=key.expires_at,
                active=is_live(key, moment),
            )
            for key in all_keys(session, tenant_id)
        ]
    )


@router.delete(
    "/secrets/{kid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a signing key",
    operation_id="tenants-secrets-revoke",
    dependencies=admin,
    responses={
        **ADMIN_ERRORS,
        **error_responses(
            e404="No tenant has this id, or it has no key with this kid.",
            e409="This is the tenant's last live key.",
        ),
    },
)
def revoke_secret(
    tenant_id: TenantIdPath, kid: KidPath, session: SessionDep, now: NowDep, request: Request
) -> None:
    """Delete a key at once: tokens signed with it stop verifying once gateways refresh.

    The tenant's last live key cannot be revoked (rotate first).
    """
    get_tenant_or_404(session, tenant_id)
    keys = all_keys(session, tenant_id)
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="key not found")
    moment = as_datetime(now)
    if is_live(key, moment) and not any(is_live(k, moment) for k in keys if k is not key):
        raise HTTPException(status.HTTP_409_CONFLICT, detail="cannot revoke the last live key")
    session.delete(key)
    commit_change(session)
    invalidate_routes(request)


@router.post(
    "/api-key",
    status_code=status.HTTP_201_CREATED,
    summary="Rotate the tenant API key",
    operation_id="tenants-api-key-rotate",
    dependencies=admin,
    responses={**ADMIN_ERRORS, **NOT_FOUND},
)
def rotate_api_key(tenant_id: TenantIdPath, session: SessionDep) -> ApiKeyCreated:
    """Replace the tenant's API key; the old one stops working at once.

    The new key is shown only in this answer (only its SHA-256 is stored).
    """
    tenant = get_tenant_or_404(session, tenant_id)
    api_key = new_api_key()
    tenant.api_key_hash = api_key_hash(api_key)
    session.add(tenant)
    session.commit()
    return ApiKeyCreated(api_key=api_key)


def authorize_tenant(session: Session, tenant_id: str, credential: str, admin_token: str) -> Tenant:
    """The tenant, when ``credential`` is the admin token (else 404 for an unknown id) or
    this tenant's API key (else 403, whether or not the tenant exists)."""
    if secrets_equal(credential, admin_token):
        return get_tenant_or_404(session, tenant_id)
    tenant = session.get(Tenant, tenant_id)
    stored = tenant.api_key_hash if tenant is not None else None
    if tenant is None or stored is None or not secrets_equal(api_key_hash(credential), stored):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="credential is not valid for this tenant"
        )
    return tenant


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Mint a user token",
    operation_id="tenants-tokens-create",
    responses=error_responses(
        e400="The body cannot be decoded (not UTF-8 JSON).",
        e401="No bearer token and no `X-Api-Key`.",
        e403="Neither the admin token nor this tenant's API key.",
        e404="No tenant has this id (admin only; others get 403).",
        e409="The tenant is disabled.",
    ),
)
def create_token(
    tenant_id: TenantIdPath,
    body: TokenCreate,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
) -> TokenCreated:
    """A sign-in token for one of the tenant's users, signed with its newest key.

    JWT HS256, header `kid`; claims `acc` (account), `app` (tenant id), `iat`, `exp`.
    Callable by an admin or by the tenant's backend with its API key.
    """
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    if tenant.status != TenantStatus.ACTIVE:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="tenant is disabled")
    keys = live_keys(session, tenant_id, now)
    if not keys:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="tenant has no live key")
    token = mint_token(keys[0], tenant_id, body.account, now, body.ttl)
    return TokenCreated(token=token, kid=keys[0].kid, expires_at=token_expiry(now, body.ttl))
