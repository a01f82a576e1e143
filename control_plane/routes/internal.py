"""``/internal/v1``: what gateways and logic nodes, which hold no database, read.

Authenticated by the cluster secret, never by the admin token. Answers carry an
``ETag`` so a poller that sends ``If-None-Match`` gets a bodiless 304 while nothing
changed.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response, status
from sqlmodel import col, select

from control_plane.db import SessionDep
from control_plane.deps import require_cluster
from control_plane.models import SecretKey, Tenant, TenantKeys, TenantSecrets
from control_plane.routes import CLUSTER_ERRORS

router = APIRouter(
    prefix="/internal/v1",
    tags=["internal"],
    dependencies=[Depends(require_cluster)],
    responses=CLUSTER_ERRORS,
)


def etag_of(body: bytes) -> str:
    """A strong entity tag naming ``body``."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header value names ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


@router.get(
    "/tenants",
    summary="Tenant signing keys",
    operation_id="internal-tenants-secrets",
    response_model=TenantSecrets,
    responses={
        status.HTTP_304_NOT_MODIFIED: {
            "description": "Nothing changed since the answer named by `If-None-Match`."
        }
    },
)
def tenant_secrets(
    session: SessionDep,
    if_none_match: Annotated[
        str | None, Header(description="The `ETag` of the last answer the caller holds.")
    ] = None,
) -> Response:
    """Every tenant with its status and its signing keys, ordered by tenant id.

    Gateways verify sign-in tokens with these keys (the token's `kid` header names one)
    and refuse users of tenants whose status is `disabled`. Poll with `If-None-Match`;
    keep using the last answer while the control plane is unreachable.
    """
    rows = session.exec(select(Tenant).order_by(col(Tenant.id))).all()
    document = TenantSecrets(
        tenants=[
            TenantKeys(
                id=row.id,
                status=row.status,
                keys=[SecretKey(kid=row.secret_kid, secret=row.secret)],
            )
            for row in rows
        ]
    )
    body = document.model_dump_json().encode("utf-8")
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache, private"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)
