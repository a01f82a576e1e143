"""Token verification without sockets: keys by kid, rotation overlap, short secrets."""

from __future__ import annotations

import base64
import contextlib
import json
import time

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from data_plane.cluster.tenants import TenantInfo, TenantKey
from data_plane.gateway.auth import AuthError, verify_token

pytestmark = pytest.mark.anyio

SHORT = "sixteen-chars-ok"  # 16 characters: accepted by the control plane
TENANT = TenantInfo(
    id="acme", active=True, keys=(TenantKey("k2", "new-secret-" + "x" * 24), TenantKey("k1", SHORT))
)


async def lookup(tenant_id: str) -> TenantInfo | None:
    return TENANT if tenant_id == "acme" else None


def token(secret: str, kid: str | None = None, **claims: object) -> str:
    body = {"acc": "alice", "app": "acme", "exp": int(time.time()) + 60, **claims}
    short = len(secret) < 32  # PyJWT warns when signing with it; verifying must not
    with pytest.warns(InsecureKeyLengthWarning) if short else contextlib.nullcontext():
        return jwt.encode(body, secret, algorithm="HS256", headers={"kid": kid} if kid else None)


async def test_a_short_brought_secret_verifies_without_warnings() -> None:
    claims = await verify_token(token(SHORT, "k1"), lookup)
    assert (claims.tenant, claims.account) == ("acme", "alice")


async def test_without_kid_every_current_key_is_tried() -> None:
    assert (await verify_token(token(SHORT), lookup)).account == "alice"
    assert (await verify_token(token("new-secret-" + "x" * 24), lookup)).account == "alice"


async def test_kid_pins_the_key() -> None:
    with pytest.raises(AuthError, match="invalid token"):
        await verify_token(token(SHORT, "k2"), lookup)
    with pytest.raises(AuthError, match="unknown key id"):
        await verify_token(token(SHORT, "k9"), lookup)


async def test_an_account_with_a_trailing_newline_is_refused() -> None:
    # The control plane's old re.match(...$) let "alice\n" through; the gateway never did.
    with pytest.raises(AuthError, match="'acc'"):
        await verify_token(token(SHORT, "k1", acc="alice\n"), lookup)


def unsigned(header: dict[str, object]) -> str:
    """A token with any header: PyJWT here cannot sign RS256 (no cryptography)."""
    body = {"acc": "alice", "app": "acme", "exp": int(time.time()) + 60}
    segments = (json.dumps(header).encode(), json.dumps(body).encode(), b"signature")
    return ".".join(base64.urlsafe_b64encode(s).rstrip(b"=").decode() for s in segments)


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256"])
async def test_other_algorithms_are_refused(alg: str) -> None:
    with pytest.raises(AuthError, match="token algorithm must be HS256"):
        await verify_token(unsigned({"alg": alg, "typ": "JWT", "kid": "k1"}), lookup)


async def test_real_none_and_hs512_tokens_are_refused() -> None:
    body = {"acc": "alice", "app": "acme", "exp": int(time.time()) + 60}
    for forged in (
        jwt.encode(body, None, algorithm="none"),
        jwt.encode(body, "x" * 64, algorithm="HS512"),
    ):
        with pytest.raises(AuthError, match="algorithm"):
            await verify_token(forged, lookup)


async def test_expiry_reads_the_given_clock() -> None:
    expires = 2_000_000_000
    later = token(SHORT, "k1", exp=expires)
    assert (await verify_token(later, lookup, clock=lambda: expires - 0.5)).expires_at == expires
    with pytest.raises(AuthError, match=r"^token expired$"):
        await verify_token(later, lookup, clock=lambda: expires)
