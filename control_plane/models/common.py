"""Column types, time helpers and response bodies shared by every entity.

Timestamps of records (``created_at``, key expiries) are stored as naive UTC (SQLite and
MySQL ``DATETIME`` keep no offset) and are given back the UTC offset on the way out, so
clients always see ``…+00:00``. Node liveness is kept as epoch seconds (``DOUBLE``):
it is compared on every registry read and never shown to people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, StringConstraints, model_validator
from sqlalchemy.dialects import mysql
from sqlmodel import SQLModel

from data_plane.cluster.identity import ACCOUNT_MAX_LENGTH, ACCOUNT_PATTERN, check_account

# Microseconds on MySQL too (its DATETIME defaults to whole seconds).
TIMESTAMP_TYPE = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# 53-bit floats everywhere (MySQL's FLOAT is single precision).
DOUBLE_TYPE: sa.Double[float] = sa.Double()
MYSQL_TABLE: dict[str, Any] = {"mysql_charset": "utf8mb4"}

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SLUG_MAX = 64
ENUM_MAX = 16

Account = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ACCOUNT_MAX_LENGTH, pattern=ACCOUNT_PATTERN),
    AfterValidator(check_account),
]
"""An account name, by the rule gateways apply (``data_plane.cluster.identity``)."""


def string_enum(enum: type[StrEnum]) -> sa.Enum:
    """A VARCHAR(16) column type holding the enum's value.

    No native ENUM and no CHECK constraint, so a new value is a code change, not a
    schema change.
    """
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=ENUM_MAX,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def utcnow() -> datetime:
    """The current time as naive UTC, the form stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_datetime(epoch_seconds: float) -> datetime:
    """Epoch seconds (a clock reading) as the naive UTC datetime the database stores."""
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)


def as_epoch(value: datetime) -> float:
    """A stored naive-UTC datetime as epoch seconds."""
    return _as_utc(value).timestamp()


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class ErrorResponse(SQLModel):
    """The body of every error the API raises on purpose (422 keeps FastAPI's shape)."""

    detail: str


class Health(SQLModel):
    """Whether the control plane can serve: ``ok``, or ``unavailable`` with a 503."""

    status: Literal["ok", "unavailable"]


class Ping(SQLModel):
    """Body of ``GET /v1/ping``."""

    ok: bool


class PartialUpdate(SQLModel):
    """Base of ``PATCH`` bodies: fields left out keep their value.

    An explicit ``null`` is refused for every field not named by ``nullable_fields``: it
    would mean "unset a required column", a validation error rather than a database
    failure.
    """

    @model_validator(mode="after")
    def _no_nulls(self) -> PartialUpdate:
        allowed = set(type(self).nullable_fields())
        nulls = sorted(
            name
            for name in self.model_fields_set
            if getattr(self, name) is None and name not in allowed
        )
        if nulls:
            raise ValueError(f"fields may be omitted but not null: {', '.join(nulls)}")
        return self

    @classmethod
    def nullable_fields(cls) -> tuple[str, ...]:
        """Fields an explicit ``null`` clears (none by default)."""
        return ()

    def changes(self) -> dict[str, Any]:
        """The fields the client set, by name."""
        return self.model_dump(exclude_unset=True)
