"""Standard Webhooks signatures (https://www.standardwebhooks.com).

Every attempt carries ``webhook-id`` (the event's id, the same on every attempt and
every redelivery, so receivers can de-duplicate), ``webhook-timestamp`` (seconds since
the epoch, of this attempt) and ``webhook-signature``: ``v1,`` + base64 of
HMAC-SHA256 over ``f"{id}.{timestamp}.{body}"``, keyed with the secret's bytes (the
base64 after ``whsec_``). Pure code: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt (content type included)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
