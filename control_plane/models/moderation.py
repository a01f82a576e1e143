"""A tenant's moderation hook: the URL logic nodes POST each client message to before
storing it, the secret those requests are signed with, the deadline and what happens
when the hook cannot answer (docs/server_api.md, "Moderation hook").

One row per tenant (``tenant_moderation``). It reaches logic nodes through the tenant
directory (``GET /internal/v1/tenants``), as bans do. The secret (``whsec_`` + base64
of 24 random bytes, the Standard Webhooks format) is shown by the request that creates
or rotates it, never again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from control_plane.models.common import MYSQL_TABLE, TIMESTAMP_TYPE, UtcDateTime, utcnow
from control_plane.models.tenants import TENANT_ID_MAX
from control_plane.models.webhooks import SECRET_MAX, URL_MAX, HttpUrl
from data_plane.cluster.tenants import (
    MODERATION_DEADLINE_DEFAULT_MS,
    MODERATION_DEADLINE_MAX_MS,
    MODERATION_DEADLINE_MIN_MS,
)

FAIL_OPEN_TEXT = (
    "When the hook is down, slow past the deadline or answers anything but a verdict: "
    "true stores the message unchecked, false refuses it (Unavailable, 503)."
)


class TenantModeration(SQLModel, table=True):
    """A tenant's moderation hook."""

    __tablename__ = "tenant_moderation"
    __table_args__ = MYSQL_TABLE

    tenant_id: str = Field(
        primary_key=True, max_length=TENANT_ID_MAX, foreign_key="tenant.id", ondelete="CASCADE"
    )
    url: str = Field(max_length=URL_MAX)
    secret: str = Field(max_length=SECRET_MAX)
    deadline_ms: int
    fail_open: bool
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)


class ModerationSet(SQLModel):
    """Body of ``PUT /v1/tenants/{tenant_id}/moderation``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    url: HttpUrl = Field(
        max_length=URL_MAX, description="`http(s)://` URL each message is POSTed to."
    )
    deadline_ms: int = Field(
        default=MODERATION_DEADLINE_DEFAULT_MS,
        ge=MODERATION_DEADLINE_MIN_MS,
        le=MODERATION_DEADLINE_MAX_MS,
        description="How long a logic node waits for the hook's answer (the sender waits "
        "as long), milliseconds.",
    )
    fail_open: bool = Field(default=True, description=FAIL_OPEN_TEXT)
    rotate_secret: bool = Field(
        default=False, description="Replace the signing secret (shown in this answer)."
    )


class ModerationPublic(SQLModel):
    """A tenant's moderation hook as answers show it."""

    url: str
    deadline_ms: int
    fail_open: bool = Field(description=FAIL_OPEN_TEXT)
    updated_at: UtcDateTime


class ModerationSaved(ModerationPublic):
    """Answer of a ``PUT``: the secret only when this request created or rotated it."""

    secret: str | None = Field(
        description="`whsec_` + base64: verify `webhook-signature` with it. Shown once; "
        "null when the stored secret was kept."
    )
