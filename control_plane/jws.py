"""Compact JWS with HS256 only: what user tokens need, nothing else.

Tokens are standard JWTs (any JWT library verifies them), but signing and verifying
here take a few microseconds, parse each token once, and never warn about short keys:
tenants may bring existing secrets of 16 bytes or more, which PyJWT flags at every
call. The algorithm is pinned: a header naming anything but ``HS256`` (``none``
included) is refused before any key is touched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

ALGORITHM = "HS256"


class MalformedToken(ValueError):
    """The token is not a compact JWS with JSON header and claims; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split and decoded, signature not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def signed_with(self, secret: str) -> bool:
        """Whether the signature is HMAC-SHA256 of the signing input under ``secret``."""
        expected = hmac.new(secret.encode(), self.signing_input, hashlib.sha256).digest()
        return hmac.compare_digest(expected, self.signature)


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("a segment is not base64url") from exc


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedToken(f"the {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedToken(f"the {what} is not a JSON object")
    return value


def encode(claims: dict[str, Any], secret: str, kid: str) -> str:
    """A compact HS256 JWS of ``claims`` with header ``{"alg", "typ", "kid"}``."""
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": kid}
    signing_input = b".".join(
        _b64encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64encode(signature)).decode()


def parse(token: str) -> ParsedToken:
    """Split and decode ``token``; MalformedToken when it is not an HS256 compact JWS."""
    if not token.isascii():
        raise MalformedToken("the token is not ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken("a token has three dot-separated segments")
    header = _json_object(parts[0], "header")
    if header.get("alg") != ALGORITHM:
        raise MalformedToken(f"token algorithm must be {ALGORITHM}")
    claims = _json_object(parts[1], "claims")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    return ParsedToken(header, claims, signing_input, _b64decode(parts[2]))
