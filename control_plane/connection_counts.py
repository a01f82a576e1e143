"""Gateways' connections per tenant, for cluster-wide ``max_connections``.

Each gateway heartbeat carries the gateway's open connections per tenant (only tenants
with a quota and a connection there, at most ``MAX_TENANT_COUNTS``). They replace the
gateway's previous report in ``node_tenant_connections``: only the rows that changed are
written, with batched Core statements, so a steady gateway costs one read per beat. A
row counts while its node's ``nodes`` row is live; an expired gateway's rows stay until
it beats again but count for nothing. The answer to a gateway's heartbeat sums, per
tenant whose quota is set, the rows of the *other* live gateways.

A gateway only ever writes its own rows (primary key ``(node_id, tenant_id)``), so
heartbeats of different gateways do not contend; a heartbeat that loses a race anyway
(the same node beating twice at once, a deadlock) is rolled back and retried.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from control_plane.models import Node, NodeRole, NodeTenantConnections, Tenant
from control_plane.registry import RegistryBusy
from data_plane.cluster.registry import MAX_TENANT_COUNTS

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
DELETE_CHUNK = 500
"""Tenant ids per ``DELETE … IN (…)``, well under every driver's parameter limit."""

_rows = NodeTenantConnections.__table__  # type: ignore[attr-defined]


def exchange_counts(
    session: Session, node_id: str, counts: Mapping[str, int], now: float
) -> dict[str, int]:
    """Store gateway ``node_id``'s ``counts`` (replacing its previous report, zeros
    dropped) and return the other live gateways' connections per quota-limited tenant.

    Raises :class:`RegistryBusy` when the write kept losing races.
    """
    store_counts(session, node_id, counts)
    return counts_elsewhere(session, node_id, now)


def store_counts(session: Session, node_id: str, counts: Mapping[str, int]) -> None:
    """Replace ``node_id``'s rows with ``counts`` in one transaction, retried on races."""
    wanted = {tenant: n for tenant, n in counts.items() if n > 0}
    for attempt in range(MAX_ATTEMPTS):
        try:
            _write_changes(session, node_id, wanted)
            session.commit()
            return
        except (IntegrityError, OperationalError) as exc:
            session.rollback()
            log.debug("counts of %s lost a race (attempt %d): %s", node_id, attempt, exc)
    raise RegistryBusy(f"connection counts of {node_id!r} did not commit after {MAX_ATTEMPTS}")


def _write_changes(session: Session, node_id: str, wanted: dict[str, int]) -> None:
    stored = dict(
        session.execute(
            select(_rows.c.tenant_id, _rows.c.connections).where(_rows.c.node_id == node_id)
        ).all()
    )
    gone = [tenant for tenant in stored if tenant not in wanted]
    changed = [
        {"n": node_id, "t": tenant, "c": n}
        for tenant, n in wanted.items()
        if tenant in stored and stored[tenant] != n
    ]
    added = [
        {"node_id": node_id, "tenant_id": tenant, "connections": n}
        for tenant, n in wanted.items()
        if tenant not in stored
    ]
    for start in range(0, len(gone), DELETE_CHUNK):
        chunk = gone[start : start + DELETE_CHUNK]
        session.execute(
            delete(_rows).where(_rows.c.node_id == node_id, _rows.c.tenant_id.in_(chunk))
        )
    if changed:
        session.execute(
            update(_rows)
            .where(_rows.c.node_id == bindparam("n"), _rows.c.tenant_id == bindparam("t"))
            .values(connections=bindparam("c")),
            changed,
        )
    if added:
        session.execute(insert(_rows), added)


def counts_elsewhere(session: Session, node_id: str, now: float) -> dict[str, int]:
    """Per tenant with ``max_connections > 0``: the connections that live gateways other
    than ``node_id`` reported, the largest ``MAX_TENANT_COUNTS`` sums (zeros left out)."""
    total = func.sum(_rows.c.connections).label("total")
    query = (
        select(_rows.c.tenant_id, total)
        .join(Node, col(Node.id) == _rows.c.node_id)
        .join(Tenant, col(Tenant.id) == _rows.c.tenant_id)
        .where(
            col(Node.expires_at) > now,
            col(Node.role) == NodeRole.GATEWAY,
            col(Node.id) != node_id,
            col(Tenant.max_connections) > 0,
        )
        .group_by(_rows.c.tenant_id)
        .order_by(total.desc(), _rows.c.tenant_id)
        .limit(MAX_TENANT_COUNTS)
    )
    elsewhere = {str(tenant): int(n) for tenant, n in session.execute(query).all() if n}
    session.commit()  # end the read transaction (MySQL would keep its snapshot open)
    return elsewhere
