"""``/v1/tenants``: create, list, read, update (rename, disable, enable) and delete tenants.

Every route needs the admin token. A tenant's secret is shown once, in the answer to
its creation; afterwards only gateways read it, through the internal endpoint.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from control_plane.db import SessionDep
from control_plane.deps import require_admin
from control_plane.models import (
    TENANT_ID_MAX,
    TENANT_ID_PATTERN,
    Tenant,
    TenantCreate,
    TenantCreated,
    TenantPublic,
    TenantsPublic,
    TenantUpdate,
    utcnow,
)
from control_plane.routes import ADMIN_ERRORS, error_responses

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


def new_secret() -> str:
    """A fresh HS256 signing secret (256 bits)."""
    return secrets.token_urlsafe(32)


def _get_or_404(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="tenant not found")
    return tenant


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a tenant",
    operation_id="tenants-create",
    responses=error_responses(e409="A tenant with this id exists already."),
)
def create_tenant(body: TenantCreate, session: SessionDep) -> TenantCreated:
    """Create a tenant, active from the start.

    The id and the HS256 signing secret are generated unless given; bringing an
    existing secret keeps the tokens an app already issues valid. The answer is the only
    place the secret is ever shown: store it.
    """
    tenant_id = body.id or new_tenant_id()
    if session.get(Tenant, tenant_id) is not None:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="tenant exists")
    tenant = Tenant(id=tenant_id, name=body.name, secret=body.secret or new_secret())
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError as exc:  # created concurrently since the check above
        session.rollback()
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail="tenant exists") from exc
    session.refresh(tenant)
    return TenantCreated.model_validate(tenant)


@router.get("", summary="List tenants", operation_id="tenants-list")
def list_tenants(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, description="Tenants to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
) -> TenantsPublic:
    """One page of tenants ordered by id, with the total number of tenants."""
    count = session.exec(select(func.count()).select_from(Tenant)).one()
    rows = session.exec(select(Tenant).order_by(col(Tenant.id)).offset(offset).limit(limit))
    return TenantsPublic(data=[TenantPublic.model_validate(row) for row in rows], count=count)


@router.get(
    "/{tenant_id}",
    summary="Get a tenant",
    operation_id="tenants-get",
    responses=NOT_FOUND,
)
def get_tenant(tenant_id: TenantIdPath, session: SessionDep) -> TenantPublic:
    """One tenant, without its secret."""
    return TenantPublic.model_validate(_get_or_404(session, tenant_id))


@router.patch(
    "/{tenant_id}",
    summary="Update a tenant",
    operation_id="tenants-update",
    responses=NOT_FOUND,
)
def update_tenant(tenant_id: TenantIdPath, body: TenantUpdate, session: SessionDep) -> TenantPublic:
    """Rename a tenant or change its status; fields left out keep their value.

    `"status": "disabled"` disables the tenant: gateways learn it from the internal
    endpoint and refuse its users' sign-ins. `"active"` enables it again.
    """
    tenant = _get_or_404(session, tenant_id)
    changes = body.changes()
    if changes:
        tenant.sqlmodel_update(changes)
        tenant.updated_at = utcnow()
        session.add(tenant)
        session.commit()
        session.refresh(tenant)
    return TenantPublic.model_validate(tenant)


@router.delete(
    "/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a tenant",
    operation_id="tenants-delete",
    responses=NOT_FOUND,
)
def delete_tenant(tenant_id: TenantIdPath, session: SessionDep) -> None:
    """Delete a tenant and its secrets; its tokens stop verifying once gateways refresh."""
    session.delete(_get_or_404(session, tenant_id))
    session.commit()
