"""``/internal/v1``: what gateways and logic nodes, which hold no database, read and send.

Authenticated by the cluster secret, never by the admin token. Read answers carry an
``ETag`` so a poller that sends ``If-None-Match`` gets a bodiless 304 while nothing
changed.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from sqlmodel import SQLModel, col, select

from control_plane.bans import live_bans_by_tenant
from control_plane.connection_counts import exchange_counts
from control_plane.db import SessionDep
from control_plane.deps import NowDep, SettingsDep, invalidate_routes, require_cluster
from control_plane.keys import live_keys_by_tenant
from control_plane.models import (
    GrayscaleRuleRow,
    HeartbeatIn,
    HeartbeatOut,
    InternalModeration,
    InternalRule,
    InternalRules,
    NodeInfo,
    NodeRole,
    NodesInfo,
    SecretKey,
    Tenant,
    TenantKeys,
    TenantModeration,
    TenantQuotas,
    TenantSecrets,
)
from control_plane.registry import RegistryBusy, live_leases, live_nodes, record_heartbeat
from control_plane.routes import BAD_BODY, CLUSTER_ERRORS, error_responses
from data_plane.cluster.grayscale import rule_to_json

router = APIRouter(
    prefix="/internal/v1",
    tags=["internal"],
    dependencies=[Depends(require_cluster)],
    responses=CLUSTER_ERRORS,
)

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    status.HTTP_304_NOT_MODIFIED: {
        "description": "Nothing changed since the answer named by `If-None-Match`."
    }
}
IfNoneMatch = Annotated[
    str | None,
    Header(max_length=1024, description="The `ETag` of the last answer the caller holds."),
]


def etag_of(body: bytes) -> str:
    """A strong entity tag naming ``body``."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header value names ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def etag_response(document: SQLModel, if_none_match: str | None) -> Response:
    """``document`` as JSON with its ETag, or a bodiless 304 when the caller has it."""
    body = document.model_dump_json().encode("utf-8")
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache, private"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


@router.get(
    "/tenants",
    summary="Tenant signing keys, quotas and isolation",
    operation_id="internal-tenants-secrets",
    response_model=TenantSecrets,
    responses=NOT_MODIFIED,
)
def tenant_secrets(session: SessionDep, now: NowDep, if_none_match: IfNoneMatch = None) -> Response:
    """Every tenant with its status, live signing keys (newest first), quotas,
    isolation, live account bans, moderation hook and recall window, ordered by tenant
    id.

    Gateways verify sign-in tokens with these keys (the token's `kid` header names one),
    refuse users of tenants whose status is `disabled` and banned accounts (closing
    their live connections, and those that logged in with a key no longer listed), and
    enforce the quotas; logic nodes refuse those users' requests, store a
    `dedicated` tenant's messages in its `database_url`, ask its moderation hook about
    each message and apply its recall window. Poll with
    `If-None-Match`; keep using the last answer while the control plane is unreachable.
    """
    rows = session.exec(select(Tenant).order_by(col(Tenant.id))).all()
    keys = live_keys_by_tenant(session, now)
    bans = live_bans_by_tenant(session, now)
    hooks = {row.tenant_id: row for row in session.exec(select(TenantModeration))}
    document = TenantSecrets(
        tenants=[
            TenantKeys(
                id=row.id,
                status=row.status,
                keys=[SecretKey(kid=k.kid, secret=k.secret) for k in keys.get(row.id, [])],
                quotas=TenantQuotas(
                    max_connections=row.max_connections,
                    messages_per_second=row.messages_per_second,
                    commands_per_second=row.commands_per_second,
                    account_commands_per_second=row.account_commands_per_second,
                    logins_per_second=row.logins_per_second,
                ),
                isolation=row.isolation,
                database_url=row.database_url,
                bans=bans.get(row.id, []),
                moderation=_moderation(hooks.get(row.id)),
                recall_window_s=row.recall_window_s,
            )
            for row in rows
        ]
    )
    return etag_response(document, if_none_match)


def _moderation(row: TenantModeration | None) -> InternalModeration | None:
    if row is None:
        return None
    return InternalModeration(
        url=row.url, secret=row.secret, deadline_ms=row.deadline_ms, fail_open=row.fail_open
    )


@router.post(
    "/nodes/heartbeat",
    summary="Node heartbeat",
    operation_id="internal-nodes-heartbeat",
    response_model_exclude_defaults=True,  # no `tenant_connections` when there are none
    responses={
        **BAD_BODY,
        **error_responses(e503="The registry is contended; retry the heartbeat."),
    },
)
def heartbeat(
    beat: HeartbeatIn,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    request: Request,
) -> HeartbeatOut:
    """Register or refresh a node; it expires `ttl_s` seconds after its last heartbeat.

    Send one every `ttl_s / 3` seconds. A logic node gets (and keeps, across heartbeats)
    `id_node`, the node id of its message ids, unique among live leases; the lease
    lapses at `id_node_expires_at` (`CIRNO_ID_LEASE_TTL` after the heartbeat, an hour
    by default and never less than twice the node TTL), and a
    number is handed to another node only after its lease lapsed. `id_node` is null for
    gateways, and for a logic node when every number is leased (it must not issue ids
    until it gets one).

    A gateway reports `tenant_connections`, its open connections per tenant with a
    connection quota (this replaces its previous report), and gets back in
    `tenant_connections` what the *other* live gateways reported, per tenant whose
    `max_connections` is set: it admits a login only while its own connections plus
    those stay under the quota. An expired gateway's connections stop counting.
    """
    try:
        result = record_heartbeat(
            session,
            beat,
            now,
            node_ttl=settings.node_ttl,
            lease_ttl=settings.lease_ttl,
            id_node_count=settings.id_node_count,
        )
    except RegistryBusy as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    if result.shape_changed:
        invalidate_routes(request)
    elsewhere: dict[str, int] = {}
    if beat.role is NodeRole.GATEWAY:
        try:
            elsewhere = exchange_counts(session, beat.id, beat.tenant_connections, now)
        except RegistryBusy as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    lease = result.lease
    return HeartbeatOut(
        ttl_s=settings.node_ttl,
        id_node=lease.number if lease is not None else None,
        id_node_expires_at=lease.expires_at if lease is not None else None,
        tenant_connections=elsewhere,
    )


@router.get(
    "/nodes",
    summary="Live nodes",
    operation_id="internal-nodes-list",
    response_model=NodesInfo,
    responses=NOT_MODIFIED,
)
def nodes(
    session: SessionDep,
    now: NowDep,
    role: Annotated[NodeRole | None, Query(description="Only nodes of this role.")] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Unexpired nodes ordered by id (gateways dial every live logic node).

    The answer carries no timestamps, so its ETag changes only when a node appears,
    expires, or changes its addresses, flags or load.
    """
    leases = live_leases(session, now)
    document = NodesInfo(
        nodes=[
            NodeInfo.model_validate(node, update={"id_node": leases.get(node.id)})
            for node in live_nodes(session, now, role)
        ]
    )
    return etag_response(document, if_none_match)


@router.get(
    "/grayscale",
    summary="Grayscale rules",
    operation_id="internal-grayscale-rules",
    response_model=InternalRules,
    responses=NOT_MODIFIED,
)
def grayscale(session: SessionDep, if_none_match: IfNoneMatch = None) -> Response:
    """Every grayscale rule by ascending priority, in the JSON form that
    `data_plane.cluster.grayscale.rules_from_json` reads. Gateways poll it (with
    `If-None-Match`) and apply changes without a restart.
    """
    rows = session.exec(select(GrayscaleRuleRow).order_by(col(GrayscaleRuleRow.priority)))
    document = InternalRules(
        rules=[InternalRule.model_validate(rule_to_json(row.as_rule())) for row in rows]
    )
    return etag_response(document, if_none_match)
