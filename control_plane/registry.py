"""The node registry's storage rules: heartbeats, liveness and node-id leases.

A heartbeat upserts the node's row with ``expires_at = now + node_ttl``. A logic node
also renews (or obtains) its id lease: a number in ``0 .. id_node_count - 1`` that no
other unexpired lease holds, kept across heartbeats, with ``expires_at = now +
lease_ttl``. A number is handed to another node only after its lease expired.

Allocation is optimistic and safe under concurrent heartbeats on MySQL and SQLite: the
primary key on the lease number and the unique ``node_id`` refuse a second holder, and
taking over an expired lease is a conditional ``UPDATE`` that matches only while the
old holder's lease is still expired. A loser's transaction is rolled back and the whole
heartbeat retried; free numbers are picked at random so that concurrent nodes rarely
collide in the first place.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from control_plane.models import (
    HeartbeatIn,
    IdLease,
    Node,
    NodeRole,
    RevisionScope,
    commit_change,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 50
SHAPE_FIELDS = ("role", "zone", "region", "pool", "ws_url", "tcp_addr", "link_addr", "draining")
"""Fields whose change makes the route snapshot stale at once (load figures do not)."""


class LeaseRace(Exception):
    """Another heartbeat took the lease this one was about to take: retry."""


class RegistryBusy(Exception):
    """A heartbeat kept losing races (or the database kept deadlocking)."""


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """What a heartbeat recorded."""

    lease: IdLease | None
    shape_changed: bool


def record_heartbeat(
    session: Session,
    beat: HeartbeatIn,
    now: float,
    *,
    node_ttl: float,
    lease_ttl: float,
    id_node_count: int,
) -> HeartbeatResult:
    """Store ``beat`` and, for a logic node, its lease; one transaction, retried on races."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            changed = _upsert_node(session, beat, now, node_ttl)
            lease = None
            if beat.role is NodeRole.LOGIC:
                lease = _lease(session, beat.id, now, lease_ttl, id_node_count)
            if changed:  # route snapshots of every control-plane process re-read gateways
                commit_change(session, RevisionScope.GATEWAYS)
            else:
                session.commit()
        except (IntegrityError, OperationalError, LeaseRace) as exc:
            session.rollback()
            log.debug("heartbeat of %s lost a race (attempt %d): %s", beat.id, attempt, exc)
            continue
        if lease is not None:
            session.refresh(lease)
        return HeartbeatResult(lease=lease, shape_changed=changed)
    raise RegistryBusy(f"heartbeat of {beat.id!r} did not commit after {MAX_ATTEMPTS} tries")


def _upsert_node(session: Session, beat: HeartbeatIn, now: float, node_ttl: float) -> bool:
    node = session.get(Node, beat.id)
    values = beat.model_dump()
    if node is None:
        session.add(Node(**values, first_seen=now, last_seen=now, expires_at=now + node_ttl))
        session.flush()  # a concurrent first heartbeat of the same node fails here
        return True
    changed = node.expires_at <= now or any(
        getattr(node, name) != values[name] for name in SHAPE_FIELDS
    )
    node.sqlmodel_update(values)
    node.last_seen = now
    node.expires_at = now + node_ttl
    session.add(node)
    return changed


def _lease(
    session: Session, node_id: str, now: float, lease_ttl: float, count: int
) -> IdLease | None:
    expires = now + lease_ttl
    mine = session.exec(select(IdLease).where(IdLease.node_id == node_id)).first()
    if mine is not None and mine.number < count:
        # Still ours, even if it lapsed: nobody took it over (the row would say so).
        mine.expires_at = expires
        session.add(mine)
        session.flush()
        return mine
    if mine is not None:  # outside a shrunk range: give it up
        session.delete(mine)
        session.flush()
    rows = session.exec(select(IdLease)).all()
    taken = {row.number for row in rows}
    free = [number for number in range(count) if number not in taken]
    if free:
        lease = IdLease(number=random.choice(free), node_id=node_id, expires_at=expires)
        session.add(lease)
        session.flush()  # IntegrityError when a concurrent heartbeat took the number
        return lease
    expired = [row for row in rows if row.expires_at <= now and row.number < count]
    if not expired:
        return None
    victim = random.choice(expired)
    taken_over = session.exec(
        update(IdLease)
        .where(
            col(IdLease.number) == victim.number,
            col(IdLease.node_id) == victim.node_id,
            col(IdLease.expires_at) <= now,
        )
        .values(node_id=node_id, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if taken_over.rowcount != 1:
        raise LeaseRace(f"lease {victim.number} was taken over concurrently")
    session.expire_all()
    return session.get(IdLease, victim.number)


def live_nodes(session: Session, now: float, role: NodeRole | None = None) -> list[Node]:
    """Unexpired nodes ordered by id, optionally of one role."""
    query = select(Node).where(col(Node.expires_at) > now)
    if role is not None:
        query = query.where(Node.role == role)
    return list(session.exec(query.order_by(col(Node.id))).all())


def live_leases(session: Session, now: float) -> dict[str, int]:
    """Node id → leased number, for unexpired leases."""
    rows = session.exec(select(IdLease).where(col(IdLease.expires_at) > now)).all()
    return {row.node_id: row.number for row in rows}
