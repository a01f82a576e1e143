"""Who a user is: the account-name rule and user tokens, one home for the whole system.

Theory of operation. A tenant's backend, or the control plane on its behalf
(``POST /v1/tenants/{id}/tokens``), mints a token for one of its users; the user shows it
to ``/v1/route`` (control plane) and in ``login.signin`` (gateway). Both read and verify
it here, so both accept and refuse the same tokens, for the same reasons, and the REST
models validate accounts with the same rule.

A token is a JWT (RFC 7519) signed with HS256 under one of the tenant's secrets:

- at most :data:`MAX_TOKEN_LENGTH` characters;
- header ``alg`` must be ``HS256``. ``none``, ``HS512``, ``RS256`` and every other
  algorithm are refused before any key is touched: the codec below knows HS256 only, and
  every verification passes ``algorithms=["HS256"]`` besides;
- header ``kid`` (optional) names the tenant's key; without it each of the tenant's
  current keys is tried, so tokens signed before a rotation keep working in the overlap;
- claims ``acc`` (an account), ``app`` (the tenant id) and ``exp`` are required, ``nbf``
  is honoured, ``iat`` is informational. ``exp`` and ``nbf`` are compared with the
  caller's ``now``: the control plane answers by its injected clock.

Signing and checking signatures is PyJWT's: its JWS layer (``jwt.PyJWS``), one instance
that knows HS256 only, parses each token strictly once, when verifying it.
:func:`read_token` before it is a quick, lenient read that only picks the tenant and the
keys to try; the claims acted on come from the verified payload. PyJWT's JWT layer is not
used for the claims because it reads the wall clock; the claim checks here are a few
lines. Tenants may bring secrets of 16 bytes (what kim deployments used; the control
plane's ``SECRET_MIN``), which PyJWT would warn about at every call, so our HS256 leaves
the length policy to the control plane.

Accounts travel inside channel ids (``{gateway}_{account}_{n}``), comma-separated channel
lists and JSON: 1-64 printable characters (``str.isprintable``: no control, format,
separator, private-use or unassigned code point) other than space, comma and braces.
:data:`ACCOUNT_PATTERN` is the part of the rule a JSON-schema regex can state; it is
matched whole (``fullmatch``), never with ``match``, whose ``$`` lets ``"alice\\n"`` by.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_decode

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
"""Longer tokens are refused unread: a real one is a few hundred characters."""
ACCOUNT_MAX_LENGTH = 64
ACCOUNT_PATTERN = r"^[^\s,{}\x00-\x1f\x7f]{1," + str(ACCOUNT_MAX_LENGTH) + "}$"
"""The account rule as JSON schema states it; :func:`is_account` adds printability."""
ACCOUNT_RULE = "1-64 printable characters without spaces, commas or braces"
REQUIRED_CLAIMS = ("acc", "app", "exp")
_PREPARED_KEYS = 4096
SYSTEM_SENDER = "{system}"
"""The sender of a tenant's server-API messages sent without a ``from`` account. The
braces break the account rule, so no token can name it and no client can sign in as it
(nor be sent as it by a client); messages from it reach clients with this ``sender``.
It is the one non-account a group message may come from without being a member."""

_ACCOUNT = re.compile(ACCOUNT_PATTERN)


class IdentityError(ValueError):
    """Root of the errors here: an account or token is refused; ``str()`` says why.

    A ``ValueError``, so pydantic validators turn it into a 422 detail.
    """


class InvalidAccount(IdentityError):
    """The account name breaks the rule (:data:`ACCOUNT_RULE`)."""


class InvalidToken(IdentityError):
    """The token is refused; the reason is fit to show the client."""


class MalformedToken(InvalidToken):
    """Not a compact JWS with JSON header and claims, too long, or empty."""


class WrongAlgorithm(InvalidToken):
    """The header names an algorithm other than HS256 (``none`` included)."""


class UnknownKey(InvalidToken):
    """The header's ``kid`` names none of the keys offered (maybe a key not yet seen)."""


class BadSignature(InvalidToken):
    """No offered key verifies the signature."""


class InvalidClaims(InvalidToken):
    """A required claim is missing or of the wrong type."""


class TokenExpired(InvalidToken):
    """``exp`` is not after ``now``."""


class TokenNotYetValid(InvalidToken):
    """``nbf`` is after ``now``."""


def is_account(value: object) -> bool:
    """Whether ``value`` is a valid account name (see the module docstring)."""
    return isinstance(value, str) and _ACCOUNT.fullmatch(value) is not None and value.isprintable()


def check_account(value: str) -> str:
    """``value`` if it is a valid account name, else :class:`InvalidAccount`.

    Usable as a pydantic ``AfterValidator``.
    """
    if not is_account(value):
        raise InvalidAccount(f"account must be {ACCOUNT_RULE}")
    return value


class _HS256(HMACAlgorithm):
    """PyJWT's HMAC-SHA256 with the key length left to our policy and keys prepared once."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: dict[str | bytes, bytes] = {}

    def check_key_length(self, key: Any) -> str | None:
        return None  # the control plane requires 16+ bytes (SECRET_MIN) at key creation

    def prepare_key(self, key: str | bytes) -> bytes:
        # PyJWT checks that a key is no PEM, SSH or DER public key, a few microseconds a
        # call; a process sees few secrets, so the check runs once per secret.
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) >= _PREPARED_KEYS:
                self._prepared.clear()
            self._prepared[key] = prepared
        return prepared


def _codec() -> jwt.PyJWS:
    codec = jwt.PyJWS(algorithms=[])  # knows no algorithm, then HS256 only
    codec.register_algorithm(ALGORITHM, _HS256())
    return codec


_CODEC = _codec()
_ALGORITHMS = [ALGORITHM]


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    """A token read but not yet verified: it names its tenant and perhaps its key."""

    token: str
    tenant: str
    kid: str | None


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified token: who it names, the key that verified it, when it stops counting."""

    tenant: str
    account: str
    kid: str
    expires_at: float
    not_before: float | None = None


def read_token(token: str) -> UnverifiedToken:
    """Read ``token``'s tenant and key id, without verifying anything yet.

    Raises :class:`MalformedToken`, :class:`WrongAlgorithm` or :class:`InvalidClaims`
    (no ``app``). This is a quick read that only picks the keys to try: the signature,
    PyJWT's strict parse and every claim check follow in :func:`verify_token`, whose
    claims come from the verified payload, not from here.
    """
    if not token:
        raise MalformedToken("empty token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken("token too long")
    segments = token.split(".")
    if len(segments) != 3:
        raise MalformedToken("malformed token: a token has three dot-separated segments")
    header = _json_object(segments[0], "header")
    if header.get("alg") != ALGORITHM:
        raise WrongAlgorithm(f"token algorithm must be {ALGORITHM}")
    tenant = _json_object(segments[1], "claims").get("app")
    if not isinstance(tenant, str) or not tenant:
        raise InvalidClaims("token has no 'app' (tenant) claim")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedToken("malformed token: 'kid' must be a string")
    return UnverifiedToken(token, tenant, kid)


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(base64url_decode(segment))
    except (binascii.Error, ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise MalformedToken(f"malformed token: the {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise MalformedToken(f"malformed token: the {what} is not a JSON object")
    return value


def verify_token(token: UnverifiedToken, keys: Iterable[tuple[str, str]], now: float) -> Identity:
    """Verify ``token`` with the tenant's ``(kid, secret)`` pairs and check its claims.

    Only the key its ``kid`` names is tried, or each key without a ``kid``. Raises
    :class:`UnknownKey`, :class:`BadSignature`, :class:`InvalidClaims`,
    :class:`TokenExpired` or :class:`TokenNotYetValid`.
    """
    candidates = [(kid, secret) for kid, secret in keys if token.kid in (None, kid)]
    if not candidates:
        raise UnknownKey(f"unknown key id {(token.kid or '')[:32]!r}")
    for kid, secret in candidates:
        try:
            decoded = _CODEC.decode_complete(token.token, secret, algorithms=_ALGORITHMS)
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidKeyError as exc:  # a secret that is really a public key
            raise InvalidToken(f"invalid token: {exc}") from exc
        except jwt.PyJWTError as exc:  # the strict parse found what the quick read let by
            raise MalformedToken(f"malformed token: {exc}") from exc
        return _identity(decoded["payload"], token.tenant, kid, now)
    raise BadSignature("invalid token signature")


def _number(value: object, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidClaims(f"token {name!r} must be a number")
    return float(value)


def _identity(payload: bytes, tenant: str, kid: str, now: float) -> Identity:
    claims = json.loads(payload)  # parsed by read_token already: an object
    if not isinstance(claims, dict) or claims.get("app") != tenant:
        raise MalformedToken("malformed token: the claims changed between reads")
    for name in REQUIRED_CLAIMS:
        if claims.get(name) is None:
            raise InvalidClaims(f"token has no {name!r} claim")
    if not is_account(claims["acc"]):
        raise InvalidClaims(f"token 'acc' must be {ACCOUNT_RULE}")
    expires_at = _number(claims["exp"], "exp")
    nbf = claims.get("nbf")
    not_before = None if nbf is None else _number(nbf, "nbf")
    if expires_at <= now:
        raise TokenExpired("token expired")
    if not_before is not None and not_before > now:
        raise TokenNotYetValid("token not valid yet (nbf)")
    return Identity(tenant, claims["acc"], kid, expires_at, not_before)


def mint_token(
    secret: str, kid: str | None, tenant: str, account: str, issued_at: int, ttl: int
) -> str:
    """A user token: HS256, header ``kid`` (when given), claims acc, app, iat, exp.

    Raises :class:`InvalidAccount` for an account the gateway would refuse.
    """
    claims = {
        "acc": check_account(account),
        "app": tenant,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    payload = json.dumps(claims, separators=(",", ":")).encode()
    headers = {"kid": kid} if kid is not None else None
    return _CODEC.encode(payload, secret, algorithm=ALGORITHM, headers=headers)
