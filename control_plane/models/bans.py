"""Account bans: a tenant's backend (or an admin) stops one account from signing in and
sending until the ban expires or is lifted.

A ban is one row per (tenant, account); banning again replaces the row (new expiry,
new reason). A ban without ``expires_at`` lasts until it is lifted. Expired rows are
never served (every read filters on ``expires_at``) and are deleted by the next ban of
the same tenant, so the table holds at most the cap of live bans per tenant plus what
expired since that tenant's last ban.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, model_validator
from sqlmodel import Field, SQLModel

from control_plane.models.common import (
    MYSQL_TABLE,
    TIMESTAMP_TYPE,
    UtcDateTime,
    utcnow,
)
from control_plane.models.tenants import TENANT_ID_MAX
from data_plane.cluster.identity import ACCOUNT_MAX_LENGTH

BAN_REASON_MAX = 256
MAX_BAN_SECONDS = 10 * 365 * 86400


class AccountBan(SQLModel, table=True):
    """One banned account of a tenant; ``expires_at`` null means until lifted."""

    __tablename__ = "account_bans"
    __table_args__ = MYSQL_TABLE

    tenant_id: str = Field(
        primary_key=True, max_length=TENANT_ID_MAX, foreign_key="tenant.id", ondelete="CASCADE"
    )
    account: str = Field(primary_key=True, max_length=ACCOUNT_MAX_LENGTH)
    reason: str = Field(default="", max_length=BAN_REASON_MAX)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)
    expires_at: datetime | None = Field(default=None, sa_type=TIMESTAMP_TYPE, index=True)


class BanCreate(SQLModel):
    """Body of ``POST /v1/tenants/{tenant_id}/accounts/{account}/ban`` (may be empty).

    At most one of ``expires_at`` and ``duration_s``; with neither the ban lasts until it
    is lifted.
    """

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    expires_at: UtcDateTime | None = Field(
        default=None, description="When the ban ends (RFC 3339); must be in the future."
    )
    duration_s: int | None = Field(
        default=None, ge=1, le=MAX_BAN_SECONDS, description="How long the ban lasts, seconds."
    )
    reason: str = Field(
        default="",
        max_length=BAN_REASON_MAX,
        description="Shown to the banned user in the kickout and login refusal.",
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> BanCreate:
        if self.expires_at is not None and self.duration_s is not None:
            raise ValueError("give expires_at or duration_s, not both")
        return self


class BanPublic(SQLModel):
    """A ban as the API shows it."""

    tenant_id: str
    account: str
    reason: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None = Field(description="Null: until lifted.")


class BansPublic(SQLModel):
    """The tenant's live bans (one page) and how many there are."""

    data: list[BanPublic]
    count: int
