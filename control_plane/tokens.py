"""Verifying user tokens for ``/v1/route`` against the snapshot's tenant keys.

Same rules as the gateway (``data_plane.gateway.auth``): JWT, HS256 pinned (any other
``alg``, ``none`` included, is refused; see ``control_plane.jws``), claims ``acc``,
``app``, ``exp``; the header's ``kid`` names the key, and a token without ``kid`` is
tried against each live key.
Expiry is checked against the app's clock. A signature is only ever checked once per
token: verified tokens are remembered (bounded), and a remembered token is re-checked
only for expiry, its key still being live, and its tenant still being active.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from control_plane import jws
from control_plane.route.snapshot import KeyView, Snapshot

MAX_TOKEN_LENGTH = 4096
_ACCOUNT = re.compile(r"^[^\s,{}\x00-\x1f\x7f]{1,64}$")
MEMO_LIMIT = 50_000


class TokenRefused(Exception):
    """The token is refused; ``status`` is 401 (bad token) or 403 (tenant disabled)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class UnknownSigner(TokenRefused):
    """The token names a tenant or key the snapshot does not know (reload, then retry)."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The identity a verified token carries."""

    tenant: str
    account: str
    expires_at: float
    kid: str
    key: KeyView
    not_before: float | None = None


class TokenVerifier:
    """Verifies tokens with the keys of a snapshot; remembers verified tokens."""

    def __init__(self, memo_limit: int = MEMO_LIMIT) -> None:
        self._memo: dict[str, VerifiedToken] = {}
        self._memo_limit = memo_limit

    def verify(self, token: str, snapshot: Snapshot, now: float) -> VerifiedToken:
        """The token's identity, or :class:`TokenRefused` with the reason."""
        known = self._memo.get(token)
        verified = known if known is not None else self._verify_signature(token, snapshot)
        tenant = snapshot.tenants.get(verified.tenant)
        key = tenant.keys.get(verified.kid) if tenant is not None else None
        if tenant is None or key is None or key.secret != verified.key.secret:
            self._memo.pop(token, None)
            if known is not None:  # its key changed since: verify from scratch
                return self.verify(token, snapshot, now)
            raise UnknownSigner("unknown tenant or key")
        if verified.expires_at <= now:
            self._memo.pop(token, None)
            raise TokenRefused("token expired")
        if verified.not_before is not None and verified.not_before > now:
            raise TokenRefused("token not valid yet (nbf)")
        if key.expires_at is not None and key.expires_at <= now:
            raise TokenRefused(f"signing key {verified.kid!r} has expired")
        if not tenant.active:
            raise TokenRefused(f"tenant {verified.tenant!r} is disabled", status=403)
        if known is None:
            if len(self._memo) >= self._memo_limit:
                self._memo.clear()
            self._memo[token] = verified
        return verified

    def _verify_signature(self, token: str, snapshot: Snapshot) -> VerifiedToken:
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRefused("token too long")
        try:
            parsed = jws.parse(token)
        except jws.MalformedToken as exc:
            reason = str(exc)
            message = reason if "algorithm" in reason else f"malformed token: {reason}"
            raise TokenRefused(message) from exc
        tenant_id = parsed.claims.get("app")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise TokenRefused("token has no 'app' (tenant) claim")
        tenant = snapshot.tenants.get(tenant_id)
        if tenant is None:
            raise UnknownSigner(f"unknown tenant {tenant_id[:64]!r}")
        kid = parsed.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("token 'kid' must be a string")
        candidates = [(k, v) for k, v in tenant.keys.items() if kid is None or k == kid]
        if not candidates:
            raise UnknownSigner(f"unknown key id {(kid or '')[:32]!r}")
        for candidate_kid, key in candidates:
            if parsed.signed_with(key.secret):
                return _identity(parsed.claims, tenant_id, candidate_kid, key)
        raise TokenRefused("invalid token signature")


def _identity(claims: dict[str, Any], tenant: str, kid: str, key: KeyView) -> VerifiedToken:
    account = claims.get("acc")
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise TokenRefused(
            "token 'acc' must be 1-64 characters without spaces, commas, braces or "
            "control characters"
        )
    expires = claims.get("exp")
    if expires is None:
        raise TokenRefused("token has no 'exp' claim")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise TokenRefused("token 'exp' must be a number")
    not_before = claims.get("nbf")
    if not_before is not None and (
        not isinstance(not_before, int | float) or isinstance(not_before, bool)
    ):
        raise TokenRefused("token 'nbf' must be a number")
    return VerifiedToken(
        tenant, account, float(expires), kid, key, None if not_before is None else float(not_before)
    )
