"""Login token verification: JWT, HS256 pinned, claims ``acc``, ``app``, ``exp``.

The tenant named by ``app`` must exist and be active. The token is verified with that
tenant's key named by the header's ``kid``, or, without a ``kid``, with each of the
tenant's current keys (so tokens signed before a rotation keep working during the
overlap). Any other algorithm, including ``none``, is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from data_plane.cluster.tenants import TenantInfo

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
MAX_ACCOUNT_LENGTH = 64


def _valid_account(account: str) -> bool:
    """Accounts travel inside channel ids and comma-separated channel lists."""
    return (
        0 < len(account) <= MAX_ACCOUNT_LENGTH
        and account.isprintable()
        and not any(c in account for c in ",{} ")
    )


class AuthError(Exception):
    """The token is refused; ``str()`` is the reason given to the client."""


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's identity."""

    tenant: str
    account: str
    expires_at: int
    tenant_info: TenantInfo


async def verify_token(token: str, lookup: Callable[[str], Awaitable[TenantInfo | None]]) -> Claims:
    """Verify ``token``; raises :class:`AuthError` with a clear reason when refused."""
    if not token:
        raise AuthError("empty token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise AuthError("token too long")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthError(f"malformed token: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise AuthError(f"token algorithm must be {ALGORITHM}")
    tenant_id = unverified.get("app")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise AuthError("token has no 'app' (tenant) claim")
    tenant = await lookup(tenant_id)
    if tenant is None:
        raise AuthError(f"unknown tenant {tenant_id!r}")
    if not tenant.active:
        raise AuthError(f"tenant {tenant_id!r} is disabled")
    kid = header.get("kid")
    keys = [k for k in tenant.keys if kid is None or k.kid == kid]
    if not keys:
        raise AuthError(f"unknown key id {kid!r}")
    last_error: jwt.PyJWTError | None = None
    for key in keys:
        try:
            with warnings.catch_warnings():
                # Tenants may bring secrets shorter than RFC 7518's 32 bytes (kim's were);
                # the control plane accepts 16+, so PyJWT's per-call warning is noise.
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    key.secret,
                    algorithms=[ALGORITHM],
                    options={"require": ["exp", "acc", "app"]},
                )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            last_error = exc
            continue
        account = claims["acc"]
        if not isinstance(account, str) or not _valid_account(account):
            raise AuthError(
                "token 'acc' must be 1-64 characters without commas, braces or control characters"
            )
        return Claims(
            tenant=tenant_id, account=account, expires_at=int(claims["exp"]), tenant_info=tenant
        )
    raise AuthError(f"invalid token: {last_error}")
