"""Token verification without sockets: keys by kid, rotation overlap, short secrets."""

from __future__ import annotations

import contextlib
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
