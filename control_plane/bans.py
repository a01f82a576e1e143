"""Account bans: the storage rules behind ``routes/bans.py`` and the internal endpoint.

A ban is *live* while it has no expiry or its expiry is after ``now`` (the app's clock);
only live bans are listed, counted against the cap and sent to gateways, so an expired
ban disappears from every answer at its expiry, without a write. Expired rows of a
tenant are deleted by its next ban.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, delete, func, select

from control_plane.models import AccountBan, BanCreate, InternalBan, as_datetime, as_epoch


class TooManyBans(Exception):
    """The tenant has as many live bans as the cap allows."""


class BanInPast(ValueError):
    """``expires_at`` is not after now."""


def _live(moment: datetime) -> ColumnElement[bool]:
    return or_(col(AccountBan.expires_at).is_(None), col(AccountBan.expires_at) > moment)


def ban_expiry(body: BanCreate, now: float) -> datetime | None:
    """When a ban given by ``body`` at ``now`` ends (None: until lifted)."""
    if body.duration_s is not None:
        return as_datetime(now) + timedelta(seconds=body.duration_s)
    if body.expires_at is None:
        return None
    expires = as_datetime(body.expires_at.timestamp())
    if expires <= as_datetime(now):
        raise BanInPast("expires_at must be in the future")
    return expires


def live_ban_count(session: Session, tenant_id: str, now: float) -> int:
    """How many live bans the tenant has."""
    query = select(func.count()).select_from(AccountBan)
    query = query.where(AccountBan.tenant_id == tenant_id, _live(as_datetime(now)))
    return int(session.exec(query).one())


def live_bans(
    session: Session, tenant_id: str, now: float, *, offset: int = 0, limit: int | None = None
) -> list[AccountBan]:
    """The tenant's live bans ordered by account."""
    query = select(AccountBan).where(AccountBan.tenant_id == tenant_id, _live(as_datetime(now)))
    query = query.order_by(col(AccountBan.account)).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def put_ban(
    session: Session,
    tenant_id: str,
    account: str,
    body: BanCreate,
    now: float,
    max_bans: int,
) -> AccountBan:
    """Ban ``account`` (replacing its ban, if any) and delete the tenant's expired bans;
    not committed. Raises :class:`TooManyBans` when a new ban would exceed ``max_bans``
    live bans, :class:`BanInPast` for an expiry not in the future."""
    moment = as_datetime(now)
    expires_at = ban_expiry(body, now)
    session.exec(
        delete(AccountBan).where(
            col(AccountBan.tenant_id) == tenant_id,
            col(AccountBan.expires_at).is_not(None),
            col(AccountBan.expires_at) <= moment,
        )
    )
    ban = session.get(AccountBan, (tenant_id, account))
    if ban is None:
        if live_ban_count(session, tenant_id, now) >= max_bans:
            raise TooManyBans(
                f"the tenant has {max_bans} live bans, the most allowed: lift some first"
            )
        ban = AccountBan(tenant_id=tenant_id, account=account)
    ban.reason = body.reason
    ban.created_at = moment
    ban.expires_at = expires_at
    session.add(ban)
    return ban


def lift_ban(session: Session, tenant_id: str, account: str) -> bool:
    """Delete the ban of ``account`` (not committed); False when there was none."""
    ban = session.get(AccountBan, (tenant_id, account))
    if ban is None:
        return False
    session.delete(ban)
    return True


def live_bans_by_tenant(session: Session, now: float) -> dict[str, list[InternalBan]]:
    """Every tenant's live bans, as the internal endpoint sends them (one query)."""
    query = select(AccountBan).where(_live(as_datetime(now)))
    rows = session.exec(query.order_by(col(AccountBan.tenant_id), col(AccountBan.account)))
    grouped: dict[str, list[InternalBan]] = {}
    for row in rows:
        expires = as_epoch(row.expires_at) if row.expires_at is not None else None
        grouped.setdefault(row.tenant_id, []).append(
            InternalBan(account=row.account, expires_at=expires, reason=row.reason)
        )
    return grouped
