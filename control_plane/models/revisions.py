"""Revision counters: exact change detection for the route snapshots of every process.

Each control-plane process keeps an in-memory snapshot of what ``/v1/route`` reads
(``control_plane.route.cache``) and must notice writes made by the others. Comparing row
counts and newest ``updated_at`` stamps misses a write stamped no later than the newest
stamp already there (two writes in one clock tick, or replicas whose clocks disagree).
So every transaction that changes what snapshots read also increments a counter row,
inside the same transaction, and a reload compares counters instead of stamps.

Why this is exact: the increment is an ``UPDATE … SET revision = revision + 1`` of one
row, so concurrent writers serialise on that row's lock and the counter's value order
is their commit order; a reader reads the counters *before* the data (in one
transaction on MySQL, whose consistent read starts there), so a change committed after
the counters were read is either already in the data read or shows up as a new counter
value at the next reload, and never in neither.

Lock order: :func:`commit_change` flushes the transaction's own rows first and takes
the counter's lock last, right before the commit, so a writer holding the counter never
waits for another row: it cannot take part in a deadlock.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from control_plane.models.common import MYSQL_TABLE

SCOPE_MAX = 32


class RevisionScope(StrEnum):
    """What a counter covers (each is reloaded on its own when its counter moves)."""

    DIRECTORY = "directory"
    """Tenants, their keys and status, regions (countries, continents, zones), rules."""
    GATEWAYS = "gateways"
    """A node appearing, coming back after expiry, or changing role, zone, region, pool,
    addresses or draining flag (load figures are not counted: they arrive within the
    snapshot's TTL by the incremental refresh)."""


class Revision(SQLModel, table=True):
    """One counter per :class:`RevisionScope`, incremented by every write it covers."""

    __tablename__ = "revisions"
    __table_args__ = MYSQL_TABLE

    scope: str = Field(primary_key=True, max_length=SCOPE_MAX)
    revision: int = Field(sa_type=sa.BigInteger())


def bump_revision(session: Session, scope: RevisionScope) -> None:
    """Increment ``scope``'s counter in the session's transaction (the caller commits).

    The migration creates every counter row; should one be missing (a table emptied by
    hand), it is inserted again.
    """
    table = Revision.__table__  # type: ignore[attr-defined]
    connection = session.connection()
    bumped = connection.execute(
        sa.update(table).where(table.c.scope == scope.value).values(revision=table.c.revision + 1)
    )
    if bumped.rowcount == 0:
        connection.execute(sa.insert(table).values(scope=scope.value, revision=1))


def commit_change(session: Session, scope: RevisionScope = RevisionScope.DIRECTORY) -> None:
    """Commit a write that route snapshots read, bumping ``scope``'s counter with it.

    The session's pending rows are flushed first (an ``IntegrityError`` surfaces here,
    as it would from ``commit``), so the counter's row lock is the last one taken.
    """
    session.flush()
    bump_revision(session, scope)
    session.commit()


def read_revisions(session: Session) -> dict[str, int]:
    """Every counter, by scope (a missing row reads as absent)."""
    table = Revision.__table__  # type: ignore[attr-defined]
    rows = session.connection().execute(sa.select(table.c.scope, table.c.revision))
    return {row.scope: row.revision for row in rows}
