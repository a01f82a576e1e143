"""SQLModel families of the control plane's REST and database edges.

Per entity: ``Base`` (shared fields), ``Create`` / ``Update`` (request bodies), the
table model, and ``Public`` (what responses show). Secrets never appear in a ``Public``
model; they are returned once, by the create endpoint, in ``TenantCreated``.

Timestamps are stored as naive UTC (SQLite and MySQL ``DATETIME`` keep no offset) and
are given back the UTC offset on the way out, so clients always see ``…+00:00``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, ConfigDict, model_validator
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TENANT_ID_MAX = 64
TENANT_NAME_MAX = 128
SECRET_MIN = 16
SECRET_MAX = 256
SECRET_KID_MAX = 32
STATUS_MAX = 16
DEFAULT_SECRET_KID = "k1"


class TenantStatus(StrEnum):
    """Whether a tenant's users may sign in."""

    ACTIVE = "active"
    DISABLED = "disabled"


# A VARCHAR(16) holding the enum's value; no native ENUM and no CHECK constraint, so a
# new status is a code change, not a schema change.
STATUS_TYPE = sa.Enum(
    TenantStatus,
    native_enum=False,
    create_constraint=False,
    length=STATUS_MAX,
    values_callable=lambda enum: [member.value for member in enum],
    validate_strings=True,
)
# Microseconds on MySQL too (its DATETIME defaults to whole seconds).
TIMESTAMP_TYPE = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def utcnow() -> datetime:
    """The current time as naive UTC, the form stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class ErrorResponse(SQLModel):
    """The body of every error the API raises on purpose (422 keeps FastAPI's shape)."""

    detail: str


class Health(SQLModel):
    """Whether the control plane can serve: ``ok``, or ``unavailable`` with a 503."""

    status: Literal["ok", "unavailable"]


# --- tenants ---------------------------------------------------------------------------


class TenantBase(SQLModel):
    """Fields a tenant has in every representation."""

    name: str = Field(min_length=1, max_length=TENANT_NAME_MAX)


class TenantCreate(TenantBase):
    """Body of ``POST /v1/tenants``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    id: str | None = Field(
        default=None,
        max_length=TENANT_ID_MAX,
        schema_extra={"pattern": TENANT_ID_PATTERN},
        description="Tenant id (the `app` claim of its tokens); generated when absent.",
    )
    secret: str | None = Field(
        default=None,
        min_length=SECRET_MIN,
        max_length=SECRET_MAX,
        description="An existing HS256 secret to keep; generated when absent.",
    )


class TenantUpdate(SQLModel):
    """Body of ``PATCH /v1/tenants/{tenant_id}``: only the fields present change."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    name: str | None = Field(default=None, min_length=1, max_length=TENANT_NAME_MAX)
    status: TenantStatus | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> TenantUpdate:
        # A field may be left out, but an explicit null would mean "unset a required
        # column": reject it as a validation error instead of failing in the database.
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"fields may be omitted but not null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client set, by name."""
        return self.model_dump(exclude_unset=True)


class Tenant(TenantBase, table=True):
    """A tenant (an app): its users' tokens are signed with its secret."""

    __tablename__ = "tenant"
    __table_args__ = {"mysql_charset": "utf8mb4"}

    id: str = Field(primary_key=True, max_length=TENANT_ID_MAX)
    secret: str = Field(max_length=SECRET_MAX)
    secret_kid: str = Field(default=DEFAULT_SECRET_KID, max_length=SECRET_KID_MAX)
    status: TenantStatus = Field(default=TenantStatus.ACTIVE, sa_type=STATUS_TYPE)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)


class TenantPublic(TenantBase):
    """A tenant as the API shows it: never its secret."""

    id: str
    status: TenantStatus
    created_at: UtcDateTime
    updated_at: UtcDateTime


class TenantsPublic(SQLModel):
    """One page of tenants and the total count."""

    data: list[TenantPublic]
    count: int


class TenantCreated(TenantPublic):
    """Answer to a create: the only time the secret is shown."""

    secret: str
    secret_kid: str


# --- internal (gateways and logic nodes) -------------------------------------------------


class SecretKey(SQLModel):
    """One signing key of a tenant: tokens name it in their ``kid`` header."""

    kid: str
    secret: str


class TenantKeys(SQLModel):
    """A tenant as a gateway needs it to verify tokens."""

    id: str
    status: TenantStatus
    keys: list[SecretKey]


class TenantSecrets(SQLModel):
    """Body of ``GET /internal/v1/tenants``: every tenant with its signing keys."""

    tenants: list[TenantKeys]
