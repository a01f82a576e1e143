"""``/v1/tenants/{tenant_id}/webhooks``: endpoints, test events, deliveries; and
``/internal/v1/outbound``, which hands endpoints and push providers to logic nodes.

Open to an admin and to the tenant's own backend (its API key). Endpoints are stored
here; what was delivered is read from the tenant's message database
(``control_plane.outbound_store``). How events are signed and delivered: docs/server_api.md.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from sqlmodel import Session, col, select

from control_plane import outbound_store
from control_plane.db import SessionDep
from control_plane.deps import CredentialDep, SettingsDep, require_cluster
from control_plane.models import Tenant
from control_plane.models.webhooks import (
    ENDPOINT_ID_MAX,
    MAX_ENDPOINTS_PER_TENANT,
    DeliveriesPublic,
    DeliveryPublic,
    DeliveryStatus,
    OutboundConfig,
    OutboundEndpoint,
    OutboundProvider,
    PushProvider,
    TestEventQueued,
    WebhookCreate,
    WebhookCreated,
    WebhookEndpoint,
    WebhookPublic,
    WebhooksPublic,
    WebhookUpdate,
)
from control_plane.outbound_store import MessageDatabasesDep
from control_plane.routes import BAD_BODY, CLUSTER_ERRORS, error_responses
from control_plane.routes.internal import NOT_MODIFIED, IfNoneMatch, etag_response
from control_plane.routes.secrets import authorize_tenant
from control_plane.routes.tenants import TenantIdPath

router = APIRouter(prefix="/v1/tenants/{tenant_id}/webhooks", tags=["webhooks"])
internal_router = APIRouter(
    prefix="/internal/v1",
    tags=["internal"],
    dependencies=[Depends(require_cluster)],
    responses=CLUSTER_ERRORS,
)

BACKEND_ERRORS = error_responses(
    e401="No bearer token and no `X-Api-Key`.",
    e403="Neither the admin token nor this tenant's API key.",
    e404="No such tenant (admin only; others get 403) or endpoint.",
)
EndpointIdPath = Annotated[
    str,
    Path(
        max_length=ENDPOINT_ID_MAX, pattern=r"^wh_[A-Za-z0-9_-]{1,60}$", description="Endpoint id."
    ),
]
DELIVERY_PAGE = 100
STATUS_NAMES = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


def _public(row: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic(
        id=row.id,
        url=row.url,
        events=[e for e in row.events.split(",") if e],
        description=row.description,
        enabled=row.enabled,
        created_at=row.created_at,
    )


def _endpoint_or_404(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.tenant_id != tenant_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="webhook endpoint not found")
    return row


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook endpoint",
    operation_id="webhooks-create",
    responses={
        **BACKEND_ERRORS,
        **BAD_BODY,
        **error_responses(e409=f"The tenant has {MAX_ENDPOINTS_PER_TENANT} endpoints already."),
    },
)
def create_webhook(
    tenant_id: TenantIdPath,
    body: WebhookCreate,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
) -> WebhookCreated:
    """Register a URL that receives the tenant's events, signed per Standard Webhooks.

    The signing secret is shown only in this answer. Logic nodes pick the endpoint up
    within their refresh interval; events before that are not sent to it.
    """
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    count = len(
        session.exec(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant_id == tenant_id)).all()
    )
    if count >= MAX_ENDPOINTS_PER_TENANT:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="too many webhook endpoints")
    row = WebhookEndpoint(
        id="wh_" + secrets.token_urlsafe(12),
        tenant_id=tenant_id,
        url=str(body.url),
        events=",".join(sorted({e.value for e in body.events})),
        secret=new_signing_secret(),
        enabled=body.enabled,
        description=body.description,
        created_at=int(time.time() * 1000),
    )
    session.add(row)
    session.commit()
    return WebhookCreated(**_public(row).model_dump(), secret=row.secret)


@router.get(
    "",
    summary="List webhook endpoints",
    operation_id="webhooks-list",
    responses=BACKEND_ERRORS,
)
def list_webhooks(
    tenant_id: TenantIdPath, session: SessionDep, settings: SettingsDep, credential: CredentialDep
) -> WebhooksPublic:
    """The tenant's endpoints, oldest first, without their secrets."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    rows = session.exec(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(col(WebhookEndpoint.created_at), col(WebhookEndpoint.id))
    ).all()
    return WebhooksPublic(data=[_public(row) for row in rows])


@router.patch(
    "/{endpoint_id}",
    summary="Update a webhook endpoint",
    operation_id="webhooks-update",
    responses={**BACKEND_ERRORS, **BAD_BODY},
)
def update_webhook(
    tenant_id: TenantIdPath,
    endpoint_id: EndpointIdPath,
    body: WebhookUpdate,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
) -> WebhookPublic:
    """Change the URL, the events, the description or whether it is enabled; fields
    left out keep their value. A disabled endpoint receives nothing new."""
    authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = _endpoint_or_404(session, tenant_id, endpoint_id)
    changes = body.changes()
    if "url" in changes:
        row.url = str(body.url)
    if "events" in changes and body.events is not None:
        row.events = ",".join(sorted({e.value for e in body.events}))
    if "description" in changes and body.description is not None:
        row.description = body.description
    if "enabled" in changes and body.enabled is not None:
        row.enabled = body.enabled
    session.add(row)
    session.commit()
    return _public(row)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint",
    operation_id="webhooks-delete",
    responses=BACKEND_ERRORS,
)
def delete_webhook(
    tenant_id: TenantIdPath,
    endpoint_id: EndpointIdPath,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    databases: MessageDatabasesDep,
) -> None:
    """Delete the endpoint with its pending deliveries and its delivery history."""
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    row = _endpoint_or_404(session, tenant_id, endpoint_id)
    session.delete(row)
    session.commit()
    outbound_store.forget_endpoint(databases.engine_for(tenant), tenant_id, endpoint_id)


@router.post(
    "/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a test event",
    operation_id="webhooks-test",
    responses=BACKEND_ERRORS,
)
def test_webhook(
    tenant_id: TenantIdPath,
    endpoint_id: EndpointIdPath,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    databases: MessageDatabasesDep,
) -> TestEventQueued:
    """Queue a `webhook.test` event for this endpoint alone; it is delivered like any
    other (signed, retried, listed under deliveries)."""
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    _endpoint_or_404(session, tenant_id, endpoint_id)
    engine = databases.engine_for(tenant)
    event_id = outbound_store.queue_test_event(engine, tenant_id, endpoint_id)
    return TestEventQueued(event_id=f"evt_{event_id}")


def _delivery(row: outbound_store.DeliveryRow) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        event_id=f"evt_{row.event_id}",
        event_type=row.event_type,
        status=STATUS_NAMES[row.status],
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        latency_ms=row.latency_ms,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


@router.get(
    "/{endpoint_id}/deliveries",
    summary="List recent deliveries",
    operation_id="webhooks-deliveries-list",
    responses=BACKEND_ERRORS,
)
def list_deliveries(
    tenant_id: TenantIdPath,
    endpoint_id: EndpointIdPath,
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    databases: MessageDatabasesDep,
    limit: Annotated[int, Query(ge=1, le=DELIVERY_PAGE)] = 50,
) -> DeliveriesPublic:
    """The endpoint's deliveries, newest first: pending ones, and finished ones for the
    retention period (`CIRNO_WEBHOOK_RETENTION`)."""
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    _endpoint_or_404(session, tenant_id, endpoint_id)
    engine = databases.engine_for(tenant)
    rows = outbound_store.list_deliveries(engine, tenant_id, endpoint_id, limit)
    return DeliveriesPublic(data=[_delivery(row) for row in rows])


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Redeliver an event",
    operation_id="webhooks-deliveries-redeliver",
    responses=BACKEND_ERRORS,
)
def redeliver(
    tenant_id: TenantIdPath,
    endpoint_id: EndpointIdPath,
    delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    session: SessionDep,
    settings: SettingsDep,
    credential: CredentialDep,
    databases: MessageDatabasesDep,
) -> DeliveryPublic:
    """Queue the delivery's event again at the end of the endpoint's queue (same
    `webhook-id` and body, fresh attempts); the answer is the new delivery."""
    tenant = authorize_tenant(session, tenant_id, credential, settings.admin_token)
    _endpoint_or_404(session, tenant_id, endpoint_id)
    engine = databases.engine_for(tenant)
    row = outbound_store.redeliver(engine, tenant_id, endpoint_id, delivery_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="delivery not found")
    return _delivery(row)


@internal_router.get(
    "/outbound",
    summary="Webhook endpoints and push providers",
    operation_id="internal-outbound",
    response_model=OutboundConfig,
    responses=NOT_MODIFIED,
)
def outbound(session: SessionDep, if_none_match: IfNoneMatch = None) -> Response:
    """Every tenant's webhook endpoints (with their secrets) and push providers.

    Logic nodes deliver events and notifications with these. Poll with `If-None-Match`;
    keep using the last answer while the control plane is unreachable.
    """
    endpoints = session.exec(
        select(WebhookEndpoint).order_by(col(WebhookEndpoint.tenant_id), col(WebhookEndpoint.id))
    ).all()
    providers = session.exec(select(PushProvider).order_by(col(PushProvider.tenant_id))).all()
    live = set(session.exec(select(Tenant.id)).all())
    document = OutboundConfig(
        endpoints=[
            OutboundEndpoint(
                id=row.id,
                tenant=row.tenant_id,
                url=row.url,
                events=[e for e in row.events.split(",") if e],
                secret=row.secret,
                enabled=row.enabled,
            )
            for row in endpoints
            if row.tenant_id in live
        ],
        providers=[
            OutboundProvider(
                tenant=row.tenant_id,
                kind=row.kind,
                url=row.url,
                project_id=row.project_id,
                auth_token=row.auth_token,
                collapse_ms=row.collapse_ms,
            )
            for row in providers
            if row.tenant_id in live
        ],
    )
    return etag_response(document, if_none_match)
