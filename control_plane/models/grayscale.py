"""Grayscale rules as the REST API and the database see them.

The rule semantics live in ``data_plane.cluster.grayscale`` (pure, shared with the
gateways); these models only carry rules in and out. List conditions are stored as JSON
arrays in bounded ``VARCHAR`` columns.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import ConfigDict, StringConstraints, field_validator, model_validator
from sqlmodel import Field, SQLModel

from control_plane.models.common import (
    DOUBLE_TYPE,
    MYSQL_TABLE,
    SLUG_MAX,
    SLUG_PATTERN,
    TIMESTAMP_TYPE,
    Account,
    PartialUpdate,
    UtcDateTime,
    utcnow,
)
from control_plane.models.regions import ZONE_PATTERN
from control_plane.models.tenants import TENANT_ID_MAX, TENANT_ID_PATTERN
from data_plane.cluster.grayscale import GrayscaleRule, rule_problems

MAX_ACCOUNTS = 100
MAX_PLATFORMS = 16
MAX_REGIONS = 32
VERSION_MAX = 32
DESCRIPTION_MAX = 256
PRIORITY_LIMIT = 1_000_000
ACCOUNTS_COLUMN_MAX = 8192  # 100 accounts of 64 characters, quoted, as a JSON array
PLATFORMS_COLUMN_MAX = 640
REGIONS_COLUMN_MAX = 2200

Platform = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
]
RegionId = Annotated[str, StringConstraints(max_length=SLUG_MAX, pattern=SLUG_PATTERN)]
Label = Annotated[str, StringConstraints(max_length=SLUG_MAX, pattern=ZONE_PATTERN)]
TenantId = Annotated[str, StringConstraints(max_length=TENANT_ID_MAX, pattern=TENANT_ID_PATTERN)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=VERSION_MAX)]
Priority = Annotated[int, Field(ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT)]


def dump_list(values: list[str]) -> str:
    """A list condition as its stored JSON array."""
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def _fits_column(values: list[str] | None) -> list[str] | None:
    if values is not None and len(dump_list(values)) > ACCOUNTS_COLUMN_MAX:
        raise ValueError(f"accounts take more than {ACCOUNTS_COLUMN_MAX} characters as JSON")
    return values


class RuleFields(SQLModel):
    """Conditions (all must hold; empty = any) and actions of a rule."""

    priority: Priority = Field(description="Lower first; unique across rules.")
    enabled: bool = True
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    tenant: TenantId | None = None
    accounts: list[Account] = Field(default_factory=list, max_length=MAX_ACCOUNTS)
    percent: float | None = Field(
        default=None, ge=0, le=100, description="Accounts whose bucket (0..99) is below this."
    )
    min_version: Version | None = Field(default=None, description="Dotted numeric, inclusive.")
    max_version: Version | None = Field(default=None, description="Dotted numeric, inclusive.")
    platforms: list[Platform] = Field(default_factory=list, max_length=MAX_PLATFORMS)
    regions: list[RegionId] = Field(default_factory=list, max_length=MAX_REGIONS)
    gateway_pool: Label | None = Field(default=None, description="Route answers use it.")
    logic_zone: Label | None = Field(default=None, description="Gateways pick logic nodes in it.")

    _accounts_fit = field_validator("accounts")(_fits_column)

    def as_rule(self, rule_id: str) -> GrayscaleRule:
        """The pure rule these fields describe."""
        return GrayscaleRule(
            id=rule_id,
            priority=self.priority,
            enabled=self.enabled,
            tenant=self.tenant,
            accounts=tuple(self.accounts),
            percent=self.percent,
            min_version=self.min_version,
            max_version=self.max_version,
            platforms=tuple(self.platforms),
            regions=tuple(self.regions),
            gateway_pool=self.gateway_pool,
            logic_zone=self.logic_zone,
        )


class RuleCreate(RuleFields):
    """Body of ``POST /v1/grayscale/rules``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    id: str | None = Field(
        default=None,
        max_length=SLUG_MAX,
        schema_extra={"pattern": SLUG_PATTERN},
        description="Generated when absent.",
    )

    @model_validator(mode="after")
    def _valid_rule(self) -> RuleCreate:
        problems = rule_problems(self.as_rule(self.id or "new"))
        if problems:
            raise ValueError("; ".join(problems))
        return self


class RuleUpdate(PartialUpdate):
    """Body of ``PATCH /v1/grayscale/rules/{rule_id}``; the result is validated whole."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    priority: Priority | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    tenant: TenantId | None = None
    accounts: list[Account] | None = Field(default=None, max_length=MAX_ACCOUNTS)
    percent: float | None = Field(default=None, ge=0, le=100)
    min_version: Version | None = None
    max_version: Version | None = None
    platforms: list[Platform] | None = Field(default=None, max_length=MAX_PLATFORMS)
    regions: list[RegionId] | None = Field(default=None, max_length=MAX_REGIONS)
    gateway_pool: Label | None = None
    logic_zone: Label | None = None

    _accounts_fit = field_validator("accounts")(_fits_column)

    @classmethod
    def nullable_fields(cls) -> tuple[str, ...]:
        """Optional conditions and actions are cleared with ``null``."""
        return ("tenant", "percent", "min_version", "max_version", "gateway_pool", "logic_zone")


class RulePublic(RuleFields):
    """A rule as the API shows it."""

    id: str
    created_at: UtcDateTime
    updated_at: UtcDateTime


class RulesPublic(SQLModel):
    """Every rule in evaluation order (ascending priority)."""

    data: list[RulePublic]


class InternalRule(SQLModel):
    """A rule in the form ``data_plane.cluster.grayscale.rules_from_json`` reads."""

    id: str
    priority: int
    enabled: bool
    tenant: str | None
    accounts: list[str]
    percent: float | None
    min_version: str | None
    max_version: str | None
    platforms: list[str]
    regions: list[str]
    gateway_pool: str | None
    logic_zone: str | None


class InternalRules(SQLModel):
    """Body of ``GET /internal/v1/grayscale``: every rule, by ascending priority."""

    rules: list[InternalRule]


class GrayscaleRuleRow(SQLModel, table=True):
    """A stored rule; list conditions are JSON arrays."""

    __tablename__ = "grayscale_rules"
    __table_args__ = (
        sa.UniqueConstraint("priority", name="uq_grayscale_rules_priority"),
        MYSQL_TABLE,
    )

    id: str = Field(primary_key=True, max_length=SLUG_MAX)
    priority: int
    enabled: bool
    description: str = Field(max_length=DESCRIPTION_MAX)
    tenant: str | None = Field(default=None, max_length=TENANT_ID_MAX)
    accounts: str = Field(max_length=ACCOUNTS_COLUMN_MAX)
    percent: float | None = Field(default=None, sa_type=DOUBLE_TYPE)
    min_version: str | None = Field(default=None, max_length=VERSION_MAX)
    max_version: str | None = Field(default=None, max_length=VERSION_MAX)
    platforms: str = Field(max_length=PLATFORMS_COLUMN_MAX)
    regions: str = Field(max_length=REGIONS_COLUMN_MAX)
    gateway_pool: str | None = Field(default=None, max_length=SLUG_MAX)
    logic_zone: str | None = Field(default=None, max_length=SLUG_MAX)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)

    def fields(self) -> RuleFields:
        """The stored rule as request-body fields."""
        return RuleFields(
            priority=self.priority,
            enabled=self.enabled,
            description=self.description,
            tenant=self.tenant,
            accounts=json.loads(self.accounts),
            percent=self.percent,
            min_version=self.min_version,
            max_version=self.max_version,
            platforms=json.loads(self.platforms),
            regions=json.loads(self.regions),
            gateway_pool=self.gateway_pool,
            logic_zone=self.logic_zone,
        )

    @staticmethod
    def columns(fields: RuleFields) -> dict[str, Any]:
        """``fields`` as column values (list conditions as JSON)."""
        values = fields.model_dump()
        for name in ("accounts", "platforms", "regions"):
            values[name] = dump_list(values[name])
        return values

    def store(self, fields: RuleFields) -> None:
        """Copy ``fields`` into the row."""
        self.sqlmodel_update(self.columns(fields))

    def public(self) -> RulePublic:
        """The rule as the API shows it."""
        return RulePublic(
            id=self.id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            **self.fields().model_dump(),
        )

    def as_rule(self) -> GrayscaleRule:
        """The pure rule for evaluation."""
        return self.fields().as_rule(self.id)
