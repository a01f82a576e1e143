"""A tenant's signing keys and API key, and the user tokens minted with them.

A tenant's HS256 signing secrets live in ``tenant_keys`` (one row per key id), so a
rotation adds a key and gives the older ones an expiry instead of replacing them.
Secrets and the API key are shown once, in the answer that creates them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from control_plane.models.common import MYSQL_TABLE, TIMESTAMP_TYPE, Account, UtcDateTime, utcnow
from control_plane.models.tenants import (
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_TOKEN_TTL,
    MAX_OVERLAP_SECONDS,
    MAX_TOKEN_TTL,
    MIN_TOKEN_TTL,
    SECRET_KID_MAX,
    SECRET_MAX,
    SECRET_MIN,
    TENANT_ID_MAX,
)
from data_plane.cluster.identity import ACCOUNT_RULE

# --- signing keys -----------------------------------------------------------------------


class TenantKey(SQLModel, table=True):
    """One HS256 signing secret of a tenant; ``expires_at`` is set once it is rotated out."""

    __tablename__ = "tenant_keys"
    __table_args__ = MYSQL_TABLE

    tenant_id: str = Field(
        primary_key=True, max_length=TENANT_ID_MAX, foreign_key="tenant.id", ondelete="CASCADE"
    )
    kid: str = Field(primary_key=True, max_length=SECRET_KID_MAX)
    secret: str = Field(max_length=SECRET_MAX)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)
    expires_at: datetime | None = Field(default=None, sa_type=TIMESTAMP_TYPE)


class SecretCreate(SQLModel):
    """Body of ``POST /v1/tenants/{tenant_id}/secrets``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    overlap_seconds: int = Field(
        default=DEFAULT_OVERLAP_SECONDS,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the older keys stay valid (0 = retire them now).",
    )
    secret: str | None = Field(
        default=None,
        min_length=SECRET_MIN,
        max_length=SECRET_MAX,
        description="The new HS256 secret; generated when absent.",
    )


class SecretCreated(SQLModel):
    """Answer to a rotation: the only time the new secret is shown."""

    kid: str
    secret: str
    created_at: UtcDateTime


class SecretPublic(SQLModel):
    """A signing key without its secret."""

    kid: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    active: bool = Field(description="False once `expires_at` has passed.")


class SecretsPublic(SQLModel):
    """Every stored key of a tenant, newest first."""

    data: list[SecretPublic]


class ApiKeyCreated(SQLModel):
    """Answer to an API-key rotation: the only time the key is shown."""

    api_key: str


# --- user tokens ------------------------------------------------------------------------


class TokenCreate(SQLModel):
    """Body of ``POST /v1/tenants/{tenant_id}/tokens``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    account: Account = Field(description=f"{ACCOUNT_RULE[0].upper()}{ACCOUNT_RULE[1:]}.")
    ttl: int = Field(
        default=DEFAULT_TOKEN_TTL,
        ge=MIN_TOKEN_TTL,
        le=MAX_TOKEN_TTL,
        description="Lifetime in seconds.",
    )


class TokenCreated(SQLModel):
    """A signed user token (JWT HS256, header ``kid``; claims acc, app, exp, iat)."""

    token: str
    kid: str
    expires_at: UtcDateTime
