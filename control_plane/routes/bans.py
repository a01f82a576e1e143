"""``/v1/tenants/{tenant_id}/accounts/{account}/ban`` and ``/v1/tenants/{tenant_id}/bans``.

Open to an admin and to the tenant's own backend with its API key (as token minting
is). A ban refuses the account's sign-ins and requests and closes its live connections
with a ``KickoutNotify`` once gateways refresh their tenant directory
(``CIRNO_TENANT_REFRESH_INTERVAL``, 1 s by default); logic nodes refuse its requests on
the same schedule, whichever of the two learns first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy.exc import IntegrityError

from control_plane.bans import BanInPast, TooManyBans, lift_ban, live_ban_count, live_bans, put_ban
from control_plane.db import SessionDep
from control_plane.deps import CredentialDep, NowDep, SettingsDep, unprocessable
from control_plane.models import AccountBan, BanCreate, BanPublic, BansPublic
from control_plane.routes import error_responses
from control_plane.routes.accounts import AccountPath, checked_account
from control_plane.routes.secrets import authorize_tenant
from control_plane.routes.tenants import MAX_PAGE, TenantIdPath

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["bans"])
BAN_RETRIES = 3

CREDENTIAL_ERRORS = error_responses(
    e401="No bearer token and no `X-Api-Key`.",
    e403="Neither the admin token nor this tenant's API key.",
    e404="No tenant has this id (admin only; others get 403).",
)


def _public(ban: AccountBan) -> BanPublic:
    return BanPublic(
        tenant_id=ban.tenant_id,
        account=ban.account,
        reason=ban.reason,
        created_at=ban.created_at,
        expires_at=ban.expires_at,
    )


@router.post(
    "/accounts/{account}/ban",
    summary="Ban an account",
    operation_id="tenants-accounts-ban",
    responses={
        **CREDENTIAL_ERRORS,
        **error_responses(
            e400="The body cannot be decoded (not UTF-8 JSON).",
            e409="The tenant has as many live bans as `CIRNO_MAX_BANS_PER_TENANT` allows "
            "(or the account's ban kept changing under concurrent requests: retry).",
        ),
    },
)
def ban_account(
    tenant_id: TenantIdPath,
    account: AccountPath,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
    body: BanCreate | None = None,
) -> BanPublic:
    """Ban an account until `expires_at`, for `duration_s` seconds, or (with neither)
    until the ban is lifted; banning a banned account replaces its ban.

    Its sign-ins are refused with Forbidden (403) and its live connections get a
    `KickoutNotify` whose reason starts with `account banned`, then close (4002),
    within the gateways' tenant refresh interval (1 s by default). Requests it sends
    meanwhile are refused by the logic node once that node has refreshed. An expired ban
    is gone from every answer at once; no cleanup is needed. Concurrent bans of new
    accounts may pass the cap by at most their number.
    """
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    checked_account(account)
    for _ in range(BAN_RETRIES):
        try:
            ban = put_ban(
                session, tenant_id, account, body or BanCreate(), now, settings.max_bans_per_tenant
            )
        except BanInPast as exc:
            unprocessable(str(exc), ("body", "expires_at"))
        except TooManyBans as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        try:
            session.commit()
        except IntegrityError:
            # Two first bans of one account at once (on MySQL; SQLite serialises every
            # write): the loser's insert collides, and its retry updates the winner's ban.
            session.rollback()
            continue
        session.refresh(ban)
        return _public(ban)
    raise HTTPException(status.HTTP_409_CONFLICT, detail="concurrent bans, try again")


@router.delete(
    "/accounts/{account}/ban",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Lift a ban",
    operation_id="tenants-accounts-unban",
    responses=CREDENTIAL_ERRORS,
)
def unban_account(
    tenant_id: TenantIdPath,
    account: AccountPath,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
) -> None:
    """Lift the account's ban (nothing happens when it has none): it may sign in again
    once gateways refresh."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    checked_account(account)
    if lift_ban(session, tenant_id, account):
        session.commit()


@router.get(
    "/bans",
    summary="List bans",
    operation_id="tenants-bans-list",
    responses=CREDENTIAL_ERRORS,
)
def list_bans(
    tenant_id: TenantIdPath,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    now: NowDep,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Bans to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
) -> BansPublic:
    """The tenant's live bans ordered by account (expired ones are left out), one page,
    with the number of live bans."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    rows = live_bans(session, tenant_id, now, offset=offset, limit=limit)
    return BansPublic(
        data=[_public(row) for row in rows], count=live_ban_count(session, tenant_id, now)
    )
