"""Login token verification: the rules of :mod:`data_plane.cluster.identity`, per tenant.

The tenant named by ``app`` must exist and be active. The token is then verified by
:mod:`data_plane.cluster.identity` (JWT, HS256 pinned, claims ``acc``, ``app``, ``exp``)
with that tenant's key named by the header's ``kid``, or, without a ``kid``, with each of
the tenant's current keys (so tokens signed before a rotation keep working during the
overlap). The control plane's ``/v1/route`` verifies with the same module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from data_plane.cluster import identity
from data_plane.cluster.tenants import TenantInfo


class AuthError(Exception):
    """The token is refused; ``str()`` is the reason given to the client, ``tenant``
    the tenant the token named ("" when it named none), for the log."""

    def __init__(self, reason: str, tenant: str = "") -> None:
        super().__init__(reason)
        self.tenant = tenant


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's identity."""

    tenant: str
    account: str
    expires_at: int
    tenant_info: TenantInfo
    kid: str = ""
    """The key that verified the token (the gateway closes the connection if it goes)."""


async def verify_token(
    token: str,
    lookup: Callable[[str], Awaitable[TenantInfo | None]],
    clock: Callable[[], float] = time.time,
) -> Claims:
    """Verify ``token``; raises :class:`AuthError` with a clear reason when refused."""
    try:
        unverified = identity.read_token(token)
    except identity.InvalidToken as exc:
        raise AuthError(str(exc)) from exc
    tenant = await lookup(unverified.tenant)
    if tenant is None:
        raise AuthError(f"unknown tenant {unverified.tenant[:64]!r}", unverified.tenant[:64])
    if not tenant.active:
        raise AuthError(f"tenant {unverified.tenant!r} is disabled", unverified.tenant)
    keys = ((key.kid, key.secret) for key in tenant.keys)
    try:
        verified = identity.verify_token(unverified, keys, clock())
    except identity.InvalidToken as exc:
        raise AuthError(str(exc), unverified.tenant) from exc
    return Claims(verified.tenant, verified.account, int(verified.expires_at), tenant, verified.kid)
