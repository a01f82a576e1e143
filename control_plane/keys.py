"""Tenant signing keys, API keys and user tokens: the storage rules behind the routes.

Key ids are ``k1``, ``k2``, … in creation order. A rotation adds the next key and gives
every older key that has no earlier expiry ``expires_at = now + overlap``, so tokens
signed before the rotation keep verifying until then. A key is *live* while it has no
expiry or its expiry is in the future; gateways and ``/v1/route`` see only live keys,
newest first, and tokens are minted with the newest.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, delete, select

from control_plane.models import TenantKey, as_datetime
from data_plane.cluster import identity

API_KEY_PREFIX = "cak_"
_KID_NUMBER = re.compile(r"^k(\d{1,9})$")


def new_secret() -> str:
    """A fresh HS256 signing secret (256 bits)."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """A fresh tenant API key (256 bits, recognisable prefix)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def kid_order(key: TenantKey) -> tuple[datetime, int, str]:
    """Sort key: creation time, then the key number (``k10`` after ``k9``)."""
    found = _KID_NUMBER.match(key.kid)
    return (key.created_at, int(found.group(1)) if found else -1, key.kid)


def is_live(key: TenantKey, now: datetime) -> bool:
    """Whether ``key`` still verifies tokens at ``now``."""
    return key.expires_at is None or key.expires_at > now


def all_keys(session: Session, tenant_id: str) -> list[TenantKey]:
    """Every stored key of a tenant, newest first."""
    rows = session.exec(select(TenantKey).where(TenantKey.tenant_id == tenant_id)).all()
    return sorted(rows, key=kid_order, reverse=True)


def live_keys(session: Session, tenant_id: str, now: float) -> list[TenantKey]:
    """The live keys of a tenant, newest first."""
    moment = as_datetime(now)
    return [key for key in all_keys(session, tenant_id) if is_live(key, moment)]


def live_keys_by_tenant(session: Session, now: float) -> dict[str, list[TenantKey]]:
    """Every tenant's live keys, newest first (one query)."""
    moment = as_datetime(now)
    rows = session.exec(
        select(TenantKey).where(
            or_(col(TenantKey.expires_at).is_(None), col(TenantKey.expires_at) > moment)
        )
    ).all()
    grouped: dict[str, list[TenantKey]] = {}
    for row in sorted(rows, key=kid_order, reverse=True):
        grouped.setdefault(row.tenant_id, []).append(row)
    return grouped


def next_kid(existing: Sequence[TenantKey]) -> str:
    """The next key id after every ``kN`` in ``existing``."""
    numbers = [int(m.group(1)) for k in existing if (m := _KID_NUMBER.match(k.kid))]
    return f"k{max(numbers, default=0) + 1}"


def add_key(
    session: Session, tenant_id: str, secret: str, now: float, overlap_seconds: int
) -> TenantKey:
    """Add the tenant's next key and start the overlap of the older ones (not committed)."""
    existing = all_keys(session, tenant_id)
    created = as_datetime(now)
    retire_at = created + timedelta(seconds=overlap_seconds)
    for key in existing:
        if key.expires_at is None or key.expires_at > retire_at:
            key.expires_at = retire_at
            session.add(key)
    key = TenantKey(tenant_id=tenant_id, kid=next_kid(existing), secret=secret, created_at=created)
    session.add(key)
    return key


def delete_keys(session: Session, tenant_id: str) -> None:
    """Delete every key of a tenant (not committed)."""
    session.exec(delete(TenantKey).where(col(TenantKey.tenant_id) == tenant_id))


def mint_token(key: TenantKey, tenant_id: str, account: str, now: float, ttl: int) -> str:
    """A user token: JWT HS256 with header ``kid``; claims acc, app, exp, iat.

    Minted by :func:`data_plane.cluster.identity.mint_token`, the module gateways verify
    with; an account they would refuse raises ``InvalidAccount``.
    """
    return identity.mint_token(key.secret, key.kid, tenant_id, account, int(now), ttl)


def token_expiry(now: float, ttl: int) -> datetime:
    """When a token minted at ``now`` for ``ttl`` seconds expires (as stored)."""
    return as_datetime(int(now) + ttl)
