"""``/v1/tenants``: create, list, read, update (rename, disable, quotas) and delete tenants.

Every route needs the admin token. A tenant's first signing secret (key ``k1``) and its
API key are shown once, in the answer to its creation; afterwards gateways read the
secrets through the internal endpoint, and only the SHA-256 of the API key is kept.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from control_plane.db import SessionDep
from control_plane.deps import (
    NowDep,
    api_key_hash,
    invalidate_routes,
    require_admin,
    unprocessable,
)
from control_plane.keys import add_key, delete_keys, new_api_key, new_secret
from control_plane.models import (
    TENANT_ID_MAX,
    TENANT_ID_PATTERN,
    Isolation,
    Tenant,
    TenantCreate,
    TenantCreated,
    TenantPublic,
    TenantsPublic,
    TenantUpdate,
    as_datetime,
    commit_change,
    isolation_problem,
)
from control_plane.routes import ADMIN_ERRORS, BAD_BODY, error_responses

router = APIRouter(
    prefix="/v1/tenants",
    tags=["tenants"],
    dependencies=[Depends(require_admin)],
    responses=ADMIN_ERRORS,
)

TenantIdPath = Annotated[
    str,
    Path(max_length=TENANT_ID_MAX, pattern=TENANT_ID_PATTERN, description="The tenant id."),
]
NOT_FOUND = error_responses(e404="No tenant has this id.")
MAX_PAGE = 1000


def new_tenant_id() -> str:
    """A fresh random tenant id that matches the id pattern."""
    return secrets.token_hex(8)


def get_tenant_or_404(session: Session, tenant_id: str) -> Tenant:
    """The tenant, or a 404."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="tenant not found")
    return tenant


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant",
    operation_id="tenants-create",
    responses={**BAD_BODY, **error_responses(e409="A tenant with this id exists already.")},
)
def create_tenant(
    body: TenantCreate, session: SessionDep, now: NowDep, request: Request
) -> TenantCreated:
    """Create a tenant, active from the start, with its first signing key `k1`.

    The id and the HS256 signing secret are generated unless given; bringing an
    existing secret keeps the tokens an app already issues valid. A tenant API key (for
    the tenant's backend to mint user tokens) is always generated. The answer is the only
    place the secret and the API key are ever shown: store them.
    """
    tenant_id = body.id or new_tenant_id()
    if session.get(Tenant, tenant_id) is not None:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="tenant exists")
    api_key = new_api_key()
    stamp = as_datetime(now)
    tenant = Tenant(
        id=tenant_id,
        name=body.name,
        api_key_hash=api_key_hash(api_key),
        max_connections=body.max_connections,
        messages_per_second=body.messages_per_second,
        commands_per_second=body.commands_per_second,
        account_commands_per_second=body.account_commands_per_second,
        logins_per_second=body.logins_per_second,
        isolation=body.isolation,
        database_url=body.database_url,
        recall_window_s=body.recall_window_s,
        created_at=stamp,
        updated_at=stamp,
    )
    session.add(tenant)
    try:
        session.flush()  # the tenant row first: the key's foreign key points at it
        key = add_key(session, tenant_id, body.secret or new_secret(), now, overlap_seconds=0)
        commit_change(session)
    except IntegrityError as exc:  # created concurrently since the check above
        session.rollback()
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="tenant exists") from exc
    invalidate_routes(request)
    session.refresh(tenant)
    public = TenantPublic.of(tenant)
    return TenantCreated(
        **public.model_dump(), secret=key.secret, secret_kid=key.kid, api_key=api_key
    )


@router.get("", summary="List tenants", operation_id="tenants-list")
def list_tenants(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Tenants to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
) -> TenantsPublic:
    """One page of tenants ordered by id, with the total number of tenants."""
    count = session.exec(select(func.count()).select_from(Tenant)).one()
    rows = session.exec(select(Tenant).order_by(col(Tenant.id)).offset(offset).limit(limit))
    return TenantsPublic(data=[TenantPublic.of(row) for row in rows], count=count)


@router.get(
    "/{tenant_id}",
    summary="Get a tenant",
    operation_id="tenants-get",
    responses=NOT_FOUND,
)
def get_tenant(tenant_id: TenantIdPath, session: SessionDep) -> TenantPublic:
    """One tenant, without its secrets; a dedicated database URL has its password masked."""
    return TenantPublic.of(get_tenant_or_404(session, tenant_id))


@router.patch(
    "/{tenant_id}",
    summary="Update a tenant",
    operation_id="tenants-update",
    responses={**BAD_BODY, **NOT_FOUND},
)
def update_tenant(
    tenant_id: TenantIdPath, body: TenantUpdate, session: SessionDep, now: NowDep, request: Request
) -> TenantPublic:
    """Rename a tenant, change its status, quotas or isolation; fields left out keep
    their value.

    `"status": "disabled"` disables the tenant: gateways learn it from the internal
    endpoint and refuse its users' sign-ins. `"active"` enables it again. Switching to
    `shared` clears the database URL; `dedicated` needs one (given now or stored), else
    422.
    """
    tenant = get_tenant_or_404(session, tenant_id)
    changes = body.changes()
    if not changes:
        return TenantPublic.of(tenant)
    if changes.get("isolation") is Isolation.SHARED and "database_url" not in changes:
        changes["database_url"] = None
    isolation = changes.get("isolation", tenant.isolation)
    database_url = changes.get("database_url", tenant.database_url)
    problem = isolation_problem(isolation, database_url)
    if problem:
        unprocessable(problem)
    tenant.sqlmodel_update(changes)
    tenant.updated_at = as_datetime(now)
    session.add(tenant)
    commit_change(session)
    invalidate_routes(request)
    session.refresh(tenant)
    return TenantPublic.of(tenant)


@router.delete(
    "/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tenant",
    operation_id="tenants-delete",
    responses=NOT_FOUND,
)
def delete_tenant(tenant_id: TenantIdPath, session: SessionDep, request: Request) -> None:
    """Delete a tenant and its keys; its tokens stop verifying once gateways refresh."""
    tenant = get_tenant_or_404(session, tenant_id)
    delete_keys(session, tenant_id)
    session.delete(tenant)
    commit_change(session)
    invalidate_routes(request)
