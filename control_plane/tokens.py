"""Verifying user tokens for ``/v1/route`` against the snapshot's tenant keys.

The rules are :mod:`data_plane.cluster.identity`'s, the ones the gateway applies too:
JWT, HS256 pinned (any other ``alg``, ``none`` included, is refused), claims ``acc``,
``app``, ``exp``; the header's ``kid`` names the key, and a token without ``kid`` is
tried against each live key. Expiry is checked against the app's clock.

A signature is only ever checked once per token: verified tokens are remembered
(bounded), and a remembered token is re-checked only for expiry, its key still being
live, and its tenant still being active.
"""

from __future__ import annotations

from dataclasses import dataclass

from control_plane.route.snapshot import KeyView, Snapshot
from data_plane.cluster import identity

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
        verified = known if known is not None else self._verify_signature(token, snapshot, now)
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

    def _verify_signature(self, token: str, snapshot: Snapshot, now: float) -> VerifiedToken:
        try:
            unverified = identity.read_token(token)
        except identity.InvalidToken as exc:
            raise TokenRefused(str(exc)) from exc
        tenant = snapshot.tenants.get(unverified.tenant)
        if tenant is None:
            raise UnknownSigner(f"unknown tenant {unverified.tenant[:64]!r}")
        keys = ((kid, key.secret) for kid, key in tenant.keys.items())
        try:
            verified = identity.verify_token(unverified, keys, now)
        except identity.UnknownKey as exc:
            raise UnknownSigner(str(exc)) from exc
        except identity.InvalidToken as exc:
            raise TokenRefused(str(exc)) from exc
        return VerifiedToken(
            verified.tenant,
            verified.account,
            verified.expires_at,
            verified.kid,
            tenant.keys[verified.kid],
            verified.not_before,
        )
