"""Tenants: their quotas, isolation and settings, and what gateways and logic nodes read
of them (``/internal/v1/tenants``). Signing keys, the API key and user tokens are in
:mod:`control_plane.models.keys`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator, ConfigDict, model_validator
from sqlalchemy.engine import make_url
from sqlmodel import Field, SQLModel

from control_plane.models.common import (
    DOUBLE_TYPE,
    MYSQL_TABLE,
    TIMESTAMP_TYPE,
    PartialUpdate,
    UtcDateTime,
    string_enum,
    utcnow,
)
from data_plane.cluster.tenants import RECALL_WINDOW_MAX_S
from data_plane.storage.urls import UnsupportedDatabaseURL, backend_of

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TENANT_ID_MAX = 64
TENANT_NAME_MAX = 128
SECRET_MIN = 16
SECRET_MAX = 256
SECRET_KID_MAX = 32
API_KEY_HASH_MAX = 64
DATABASE_URL_MAX = 512
DEFAULT_SECRET_KID = "k1"
MAX_OVERLAP_SECONDS = 30 * 86400
DEFAULT_OVERLAP_SECONDS = 86400
MIN_TOKEN_TTL = 60
MAX_TOKEN_TTL = 30 * 86400
DEFAULT_TOKEN_TTL = 86400
MAX_CONNECTIONS_LIMIT = 2**31 - 1
MAX_MESSAGES_PER_SECOND = 1_000_000.0
COMMANDS_PER_SECOND_TEXT = (
    "Requests (every command) a connection may send per second; null = the gateways' "
    "default (20), 0 = unlimited."
)
ACCOUNT_COMMANDS_PER_SECOND_TEXT = (
    "Requests an account may send per second over all its connections to one gateway; "
    "null = the gateways' default (40), 0 = unlimited."
)
RECALL_WINDOW_TEXT = (
    "Seconds after sending during which a message may be recalled (`chat.recall`); "
    "null = the logic nodes' default (`CIRNO_RECALL_WINDOW_SECONDS`, 120), 0 = never."
)
LOGINS_PER_SECOND_TEXT = (
    "Logins of the tenant's users per second on each gateway (bursts of 5 seconds' "
    "worth); null = the gateways' default (200), 0 = unlimited."
)


class TenantStatus(StrEnum):
    """Whether a tenant's users may sign in."""

    ACTIVE = "active"
    DISABLED = "disabled"


class Isolation(StrEnum):
    """Where a tenant's messages are stored: the shared database or its own."""

    SHARED = "shared"
    DEDICATED = "dedicated"


STATUS_TYPE = string_enum(TenantStatus)
ISOLATION_TYPE = string_enum(Isolation)


def check_database_url(url: str) -> str:
    """A ``sqlite:///…`` or ``mysql://…`` URL naming a database; ValueError otherwise."""
    try:
        backend = backend_of(url)
        parsed = make_url(url)
    except (UnsupportedDatabaseURL, ValueError, sa.exc.ArgumentError) as exc:
        raise ValueError(f"database_url: {exc}") from exc
    if not parsed.database:
        raise ValueError("database_url must name a database")
    if backend == "mysql" and not parsed.host:
        raise ValueError("a mysql database_url must name a host")
    return url


DatabaseUrl = Annotated[str, AfterValidator(check_database_url)]


def mask_database_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (what public answers show)."""
    if url is None:
        return None
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ValueError, sa.exc.ArgumentError):
        return "***"


# --- tenant -----------------------------------------------------------------------------


class TenantBase(SQLModel):
    """Fields a tenant has in every representation."""

    name: str = Field(min_length=1, max_length=TENANT_NAME_MAX)


class TenantLimits(SQLModel):
    """Quotas and isolation as request bodies carry them."""

    max_connections: int = Field(
        default=0,
        ge=0,
        le=MAX_CONNECTIONS_LIMIT,
        description="Concurrent connections of the tenant's users; 0 = unlimited.",
    )
    messages_per_second: float = Field(
        default=0.0,
        ge=0,
        le=MAX_MESSAGES_PER_SECOND,
        description="Messages a connection may send per second; 0 = unlimited.",
    )
    commands_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_MESSAGES_PER_SECOND,
        description=COMMANDS_PER_SECOND_TEXT,
    )
    account_commands_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_MESSAGES_PER_SECOND,
        description=ACCOUNT_COMMANDS_PER_SECOND_TEXT,
    )
    logins_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_MESSAGES_PER_SECOND,
        description=LOGINS_PER_SECOND_TEXT,
    )
    isolation: Isolation = Field(
        default=Isolation.SHARED,
        description="`dedicated` stores the tenant's messages in `database_url`.",
    )
    database_url: DatabaseUrl | None = Field(
        default=None,
        max_length=DATABASE_URL_MAX,
        description="`sqlite:///…` or `mysql://…`; required iff isolation is `dedicated`.",
    )


def isolation_problem(isolation: Isolation, database_url: str | None) -> str | None:
    """Why this isolation and URL do not go together, or None."""
    if isolation is Isolation.DEDICATED and not database_url:
        return "a dedicated tenant needs a database_url"
    if isolation is Isolation.SHARED and database_url:
        return "database_url is only for dedicated tenants"
    return None


class TenantCreate(TenantBase, TenantLimits):
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
        description="An existing HS256 secret to keep (key id `k1`); generated when absent.",
    )
    recall_window_s: int | None = Field(
        default=None, ge=0, le=RECALL_WINDOW_MAX_S, description=RECALL_WINDOW_TEXT
    )

    @model_validator(mode="after")
    def _isolation(self) -> TenantCreate:
        problem = isolation_problem(self.isolation, self.database_url)
        if problem:
            raise ValueError(problem)
        return self


class TenantUpdate(PartialUpdate):
    """Body of ``PATCH /v1/tenants/{tenant_id}``: only the fields present change.

    ``database_url`` may be set to null (it is cleared anyway when the tenant becomes
    ``shared``); the combination is checked against the stored tenant.
    """

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    name: str | None = Field(default=None, min_length=1, max_length=TENANT_NAME_MAX)
    status: TenantStatus | None = None
    max_connections: int | None = Field(default=None, ge=0, le=MAX_CONNECTIONS_LIMIT)
    messages_per_second: float | None = Field(default=None, ge=0, le=MAX_MESSAGES_PER_SECOND)
    commands_per_second: float | None = Field(
        default=None, ge=0, le=MAX_MESSAGES_PER_SECOND, description=COMMANDS_PER_SECOND_TEXT
    )
    account_commands_per_second: float | None = Field(
        default=None,
        ge=0,
        le=MAX_MESSAGES_PER_SECOND,
        description=ACCOUNT_COMMANDS_PER_SECOND_TEXT,
    )
    logins_per_second: float | None = Field(
        default=None, ge=0, le=MAX_MESSAGES_PER_SECOND, description=LOGINS_PER_SECOND_TEXT
    )
    isolation: Isolation | None = None
    database_url: DatabaseUrl | None = Field(default=None, max_length=DATABASE_URL_MAX)
    recall_window_s: int | None = Field(
        default=None, ge=0, le=RECALL_WINDOW_MAX_S, description=RECALL_WINDOW_TEXT
    )

    @classmethod
    def nullable_fields(cls) -> tuple[str, ...]:
        """``database_url: null`` clears the URL; a rate override set to null goes back
        to the gateways' default, a recall window to the logic nodes'."""
        return (
            "database_url",
            "commands_per_second",
            "account_commands_per_second",
            "logins_per_second",
            "recall_window_s",
        )


class Tenant(TenantBase, table=True):
    """A tenant (an app): its users' tokens are signed with one of its keys."""

    __tablename__ = "tenant"
    __table_args__ = MYSQL_TABLE

    id: str = Field(primary_key=True, max_length=TENANT_ID_MAX)
    status: TenantStatus = Field(default=TenantStatus.ACTIVE, sa_type=STATUS_TYPE)
    api_key_hash: str | None = Field(default=None, max_length=API_KEY_HASH_MAX)
    max_connections: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    messages_per_second: float = Field(
        default=0.0, sa_type=DOUBLE_TYPE, sa_column_kwargs={"server_default": "0"}
    )
    # Rate overrides: NULL is "the gateways' default", so limits are on unless a tenant
    # explicitly sets 0.
    commands_per_second: float | None = Field(default=None, sa_type=DOUBLE_TYPE)
    account_commands_per_second: float | None = Field(default=None, sa_type=DOUBLE_TYPE)
    logins_per_second: float | None = Field(default=None, sa_type=DOUBLE_TYPE)
    isolation: Isolation = Field(
        default=Isolation.SHARED,
        sa_type=ISOLATION_TYPE,
        sa_column_kwargs={"server_default": Isolation.SHARED.value},
    )
    database_url: str | None = Field(default=None, max_length=DATABASE_URL_MAX)
    recall_window_s: int | None = None
    """NULL: the logic nodes' default window."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)


class TenantPublic(TenantBase):
    """A tenant as the API shows it: no secret, no API key, a masked database URL."""

    id: str
    status: TenantStatus
    max_connections: int
    messages_per_second: float
    commands_per_second: float | None = Field(description=COMMANDS_PER_SECOND_TEXT)
    account_commands_per_second: float | None = Field(description=ACCOUNT_COMMANDS_PER_SECOND_TEXT)
    logins_per_second: float | None = Field(description=LOGINS_PER_SECOND_TEXT)
    isolation: Isolation
    database_url: str | None = Field(description="The URL with its password masked.")
    recall_window_s: int | None = Field(default=None, description=RECALL_WINDOW_TEXT)
    has_api_key: bool
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantPublic:
        """The public view of a stored tenant."""
        return cls(
            id=tenant.id,
            name=tenant.name,
            status=tenant.status,
            max_connections=tenant.max_connections,
            messages_per_second=tenant.messages_per_second,
            commands_per_second=tenant.commands_per_second,
            account_commands_per_second=tenant.account_commands_per_second,
            logins_per_second=tenant.logins_per_second,
            isolation=tenant.isolation,
            database_url=mask_database_url(tenant.database_url),
            recall_window_s=tenant.recall_window_s,
            has_api_key=tenant.api_key_hash is not None,
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
        )


class TenantsPublic(SQLModel):
    """One page of tenants and the total count."""

    data: list[TenantPublic]
    count: int


class TenantCreated(TenantPublic):
    """Answer to a create: the only time the secret and the API key are shown."""

    secret: str
    secret_kid: str
    api_key: str = Field(
        description="Lets the tenant's backend mint tokens (`Authorization: Bearer`)."
    )


# --- internal (gateways and logic nodes) ------------------------------------------------


class SecretKey(SQLModel):
    """One signing key of a tenant: tokens name it in their ``kid`` header."""

    kid: str
    secret: str


class TenantQuotas(SQLModel):
    """Limits gateways enforce; 0 means unlimited, null the gateways' default."""

    max_connections: int
    messages_per_second: float
    commands_per_second: float | None = None
    account_commands_per_second: float | None = None
    logins_per_second: float | None = None


class InternalBan(SQLModel):
    """A live ban of one account (``control_plane.models.bans``), as the data plane reads
    it."""

    account: str
    expires_at: float | None = Field(description="Epoch seconds; null: until lifted.")
    reason: str


class InternalModeration(SQLModel):
    """A tenant's moderation hook as logic nodes receive it (with its secret)."""

    url: str
    secret: str
    deadline_ms: int
    fail_open: bool


class TenantKeys(SQLModel):
    """A tenant as a gateway or logic node needs it."""

    id: str
    status: TenantStatus
    keys: list[SecretKey] = Field(description="Unexpired keys, newest first.")
    quotas: TenantQuotas
    isolation: Isolation
    database_url: str | None = Field(description="The dedicated database (full URL).")
    bans: list[InternalBan] = Field(
        default_factory=list, description="Accounts banned now (expired bans are left out)."
    )
    moderation: InternalModeration | None = Field(
        default=None, description="The moderation hook; null: none."
    )
    recall_window_s: int | None = Field(default=None, description=RECALL_WINDOW_TEXT)


class TenantSecrets(SQLModel):
    """Body of ``GET /internal/v1/tenants``: every tenant with its signing keys."""

    tenants: list[TenantKeys]
