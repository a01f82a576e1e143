"""``data_plane.cluster.identity``: the account rule and user tokens, without sockets.

The gateway and ``/v1/route`` both verify with this module; their own tests
(``tests/gateway/test_auth.py``, ``tests/control_plane/test_route.py``) check that they
pass its refusals on.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest

from data_plane.cluster import identity
from data_plane.cluster.identity import (
    BadSignature,
    InvalidAccount,
    InvalidClaims,
    MalformedToken,
    TokenExpired,
    TokenNotYetValid,
    UnknownKey,
    WrongAlgorithm,
)

NOW = 1_800_000_000
SECRET = "a-secret-of-thirty-two-bytes-or-more!"
SHORT = "sixteen-chars-ok"  # the control plane's minimum; PyJWT alone would warn
GOOD = {"acc": "alice", "app": "acme", "exp": NOW + 60}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: Any, signature: bytes = b"not-a-signature") -> str:
    """A compact JWS with any header, e.g. one PyJWT here cannot sign (RS256)."""
    parts = (json.dumps(header).encode(), json.dumps(claims).encode(), signature)
    return ".".join(b64(part) for part in parts)


def sign(claims: dict[str, Any], secret: str = SECRET, kid: str | None = "k1") -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid} if kid else None)


def verify(token: str, keys: dict[str, str] | None = None, now: float = NOW) -> identity.Identity:
    offered = {"k1": SECRET} if keys is None else keys
    return identity.verify_token(identity.read_token(token), offered.items(), now)


@pytest.mark.parametrize(
    "account", ["alice", "a" * 64, "ålice", "用户-7", "a.b@c:d", "x_y|z", "O'Brien"]
)
def test_accounts_accepted(account: str) -> None:
    assert identity.is_account(account)
    assert identity.check_account(account) == account


@pytest.mark.parametrize(
    "account",
    [
        "alice\n",  # re.match(...$) once let this one through
        "\nalice",
        "",
        "a" * 65,
        "a b",
        "a,b",
        "{a}",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "c1\x85",  # NEL: whitespace in Unicode
        "c1\x9f",  # a C1 control that is not whitespace
        "zero\u200bwidth",  # format character
        "nbsp\xa0",
        "private\ue000",
    ],
)
def test_accounts_refused(account: str) -> None:
    assert not identity.is_account(account)
    with pytest.raises(InvalidAccount, match="1-64 printable characters"):
        identity.check_account(account)
    with pytest.raises(InvalidAccount):
        identity.mint_token(SECRET, "k1", "acme", account, NOW, 60)
    with pytest.raises(InvalidClaims, match="'acc'"):
        verify(sign({**GOOD, "acc": account}))


def test_non_string_accounts_refused() -> None:
    assert not identity.is_account(7)
    with pytest.raises(InvalidClaims, match="'acc'"):
        verify(sign({**GOOD, "acc": ["alice"]}))


def test_minted_tokens_are_standard_jwts() -> None:
    token = identity.mint_token(SECRET, "k7", "acme", "alice", NOW, 600)
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {"acc": "alice", "app": "acme", "iat": NOW, "exp": NOW + 600}
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT", "kid": "k7"}
    assert "kid" not in jwt.get_unverified_header(
        identity.mint_token(SECRET, None, "acme", "alice", NOW, 600)
    )
    verified = verify(token, {"k7": SECRET})
    assert verified == identity.Identity("acme", "alice", "k7", NOW + 600.0, None)


def test_short_secrets_mint_and_verify_without_warnings() -> None:
    # pytest turns warnings into errors: PyJWT's InsecureKeyLengthWarning would fail this.
    token = identity.mint_token(SHORT, "k1", "acme", "alice", NOW, 600)
    assert verify(token, {"k1": SHORT}).account == "alice"


def test_read_token_names_tenant_and_key_before_verifying() -> None:
    unverified = identity.read_token(sign(GOOD, kid="k3"))
    assert (unverified.tenant, unverified.kid) == ("acme", "k3")
    assert identity.read_token(sign(GOOD, kid=None)).kid is None


@pytest.mark.parametrize(
    ("header", "alg"),
    [
        ({"alg": "none", "typ": "JWT"}, "none"),
        ({"alg": "HS512", "typ": "JWT"}, "HS512"),
        ({"alg": "RS256", "typ": "JWT", "kid": "k1"}, "RS256"),
        ({"alg": "hs256", "typ": "JWT"}, "hs256"),
        ({"typ": "JWT"}, "missing"),
    ],
)
def test_other_algorithms_are_refused_before_any_key(header: dict[str, Any], alg: str) -> None:
    with pytest.raises(WrongAlgorithm, match="token algorithm must be HS256"):
        identity.read_token(forge(header, GOOD))


def test_real_none_and_hs512_tokens_are_refused() -> None:
    unsigned = jwt.encode(GOOD, None, algorithm="none")
    stronger = jwt.encode(GOOD, SECRET * 2, algorithm="HS512")  # 64+ bytes: no warning
    for token in (unsigned, stronger):
        with pytest.raises(WrongAlgorithm):
            verify(token, {"k1": SECRET * 2})
    # An HS256 header over an HS512 signature does not verify either.
    relabelled = forge(
        {"alg": "HS256"}, GOOD, base64.urlsafe_b64decode(stronger.split(".")[2] + "==")
    )
    with pytest.raises(BadSignature):
        verify(relabelled, {"k1": SECRET * 2})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "é.b.c",
        "!!!.e30.x",
        "bnVsbA.e30.x",
        "W10.e30.x",
        "x" * (identity.MAX_TOKEN_LENGTH + 1),
        forge({"alg": "HS256"}, ["not", "an", "object"]),
        forge({"alg": "HS256", "kid": 7}, GOOD),
        b64(b'{"alg":"HS256"}') + "." + b64(b"not json") + "." + b64(b"sig"),
        # The quick read passes these; PyJWT's strict parse does not.
        forge({"alg": "HS256", "kid": "k1"}, GOOD)[:-1] + "x=",
        sign(GOOD).replace(".", ".!", 1),
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(MalformedToken, match="token"):
        verify(token)


def test_missing_or_mistyped_claims() -> None:
    with pytest.raises(InvalidClaims, match="'app'"):
        identity.read_token(sign({"acc": "alice", "exp": NOW + 60}))
    with pytest.raises(InvalidClaims, match="'app'"):
        identity.read_token(sign({**GOOD, "app": 7}))
    with pytest.raises(InvalidClaims, match="no 'exp'"):
        verify(sign({"acc": "alice", "app": "acme"}))
    with pytest.raises(InvalidClaims, match="no 'exp'"):
        verify(sign({**GOOD, "exp": None}))
    with pytest.raises(InvalidClaims, match="no 'acc'"):
        verify(sign({"app": "acme", "exp": NOW + 60}))
    for bad in (True, "soon", [1]):
        with pytest.raises(InvalidClaims, match="'exp' must be a number"):
            verify(sign({**GOOD, "exp": bad}))
    with pytest.raises(InvalidClaims, match="'nbf' must be a number"):
        verify(sign({**GOOD, "nbf": "now"}))


def test_expiry_and_nbf_follow_the_callers_clock() -> None:
    token = sign({**GOOD, "nbf": NOW - 10})
    assert verify(token, now=NOW + 59.5).not_before == NOW - 10
    with pytest.raises(TokenExpired, match=r"^token expired$"):
        verify(token, now=NOW + 60)
    with pytest.raises(TokenNotYetValid):
        verify(token, now=NOW - 11)
    assert verify(sign({**GOOD, "exp": NOW + 0.5}), now=NOW).expires_at == NOW + 0.5


def test_kid_pins_the_key_and_no_kid_tries_each() -> None:
    keys = {"k2": "the-rotated-secret-9876543210-abc", "k1": SECRET}
    assert verify(sign(GOOD, kid=None), keys).kid == "k1"
    assert verify(sign(GOOD, keys["k2"], kid=None), keys).kid == "k2"
    with pytest.raises(BadSignature, match="invalid token signature"):
        verify(sign(GOOD, kid="k2"), keys)  # signed with k1's secret
    with pytest.raises(UnknownKey, match="unknown key id 'k9'"):
        verify(sign(GOOD, kid="k9"), keys)
    with pytest.raises(BadSignature):
        verify(sign(GOOD, "a-foreign-secret-0123456789abcdef", kid=None), keys)
    tampered = sign(GOOD)[:-4] + "AAAA"
    with pytest.raises((BadSignature, MalformedToken)):
        verify(tampered)


def test_errors_form_one_tree_of_value_errors() -> None:
    for error in (InvalidAccount, MalformedToken, WrongAlgorithm, UnknownKey, BadSignature):
        assert issubclass(error, identity.IdentityError)
    assert issubclass(identity.IdentityError, ValueError)
    assert issubclass(TokenExpired, identity.InvalidToken)
