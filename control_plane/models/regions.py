"""Regions: which countries and continents a region serves, and its zones' weights.

Countries and continents are rows keyed by their code, so the database itself refuses a
country (or continent) claimed by two regions. Exactly one region is the default: the
one clients go to when their address matches no country or continent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, StringConstraints, field_validator
from sqlmodel import Field, SQLModel

from control_plane.models.common import (
    MYSQL_TABLE,
    SLUG_MAX,
    SLUG_PATTERN,
    TIMESTAMP_TYPE,
    PartialUpdate,
    UtcDateTime,
    utcnow,
)

REGION_NAME_MAX = 128
CODE_MAX = 2
ZONE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_WEIGHT = 1_000_000
MAX_COUNTRIES = 250
MAX_ZONES = 64


class Continent(StrEnum):
    """Continent codes as GeoIP databases give them."""

    AF = "AF"
    AN = "AN"
    AS = "AS"
    EU = "EU"
    NA = "NA"
    OC = "OC"
    SA = "SA"


CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
ZoneName = Annotated[str, StringConstraints(max_length=SLUG_MAX, pattern=ZONE_PATTERN)]


class ZoneWeight(SQLModel):
    """A zone serving a region and its share of the region's clients."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    zone: ZoneName
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)


def _unique(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)
    return values


class RegionFields(SQLModel):
    """What a region maps and serves (request bodies and answers)."""

    name: str = Field(min_length=1, max_length=REGION_NAME_MAX)
    countries: list[CountryCode] = Field(
        default_factory=list,
        max_length=MAX_COUNTRIES,
        description="ISO-3166 alpha-2 codes (upper case); each in one region at most.",
    )
    continents: list[Continent] = Field(
        default_factory=list,
        max_length=len(Continent),
        description="Continent codes matched when no region names the country.",
    )
    zones: list[ZoneWeight] = Field(default_factory=list, max_length=MAX_ZONES)
    is_default: bool = Field(
        default=False, description="Clients matching no region go here; exactly one."
    )


class RegionCreate(RegionFields):
    """Body of ``POST /v1/regions``."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    id: str = Field(max_length=SLUG_MAX, schema_extra={"pattern": SLUG_PATTERN})

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        return _unique(value, "country")

    @field_validator("continents")
    @classmethod
    def _continents(cls, value: list[Continent]) -> list[Continent]:
        _unique([c.value for c in value], "continent")
        return value

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: list[ZoneWeight]) -> list[ZoneWeight]:
        _unique([z.zone for z in value], "zone")
        return value


class RegionUpdate(PartialUpdate):
    """Body of ``PATCH /v1/regions/{region_id}``: lists given replace the stored ones."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    name: str | None = Field(default=None, min_length=1, max_length=REGION_NAME_MAX)
    countries: list[CountryCode] | None = Field(default=None, max_length=MAX_COUNTRIES)
    continents: list[Continent] | None = Field(default=None, max_length=len(Continent))
    zones: list[ZoneWeight] | None = Field(default=None, max_length=MAX_ZONES)
    is_default: bool | None = Field(
        default=None, description="`true` makes this the default; `false` is refused."
    )

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value, "country")

    @field_validator("continents")
    @classmethod
    def _continents(cls, value: list[Continent] | None) -> list[Continent] | None:
        if value is not None:
            _unique([c.value for c in value], "continent")
        return value

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: list[ZoneWeight] | None) -> list[ZoneWeight] | None:
        if value is not None:
            _unique([z.zone for z in value], "zone")
        return value


class RegionPublic(RegionFields):
    """A region as the API shows it."""

    id: str
    created_at: UtcDateTime
    updated_at: UtcDateTime


class RegionsPublic(SQLModel):
    """Every region, ordered by id."""

    data: list[RegionPublic]
    count: int


# --- tables -----------------------------------------------------------------------------


class Region(SQLModel, table=True):
    """A region; its countries, continents and zones are child rows."""

    __tablename__ = "regions"
    __table_args__ = MYSQL_TABLE

    id: str = Field(primary_key=True, max_length=SLUG_MAX)
    name: str = Field(max_length=REGION_NAME_MAX)
    is_default: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TIMESTAMP_TYPE)


class RegionCountry(SQLModel, table=True):
    """A country mapped to a region (a country is in one region at most)."""

    __tablename__ = "region_countries"
    __table_args__ = MYSQL_TABLE

    country: str = Field(primary_key=True, max_length=CODE_MAX)
    region_id: str = Field(
        max_length=SLUG_MAX, foreign_key="regions.id", ondelete="CASCADE", index=True
    )


class RegionContinent(SQLModel, table=True):
    """A continent mapped to a region (a continent is in one region at most)."""

    __tablename__ = "region_continents"
    __table_args__ = MYSQL_TABLE

    continent: str = Field(primary_key=True, max_length=CODE_MAX)
    region_id: str = Field(
        max_length=SLUG_MAX, foreign_key="regions.id", ondelete="CASCADE", index=True
    )


class RegionZone(SQLModel, table=True):
    """A zone serving a region, with its weight."""

    __tablename__ = "region_zones"
    __table_args__ = MYSQL_TABLE

    region_id: str = Field(
        primary_key=True, max_length=SLUG_MAX, foreign_key="regions.id", ondelete="CASCADE"
    )
    zone: str = Field(primary_key=True, max_length=SLUG_MAX)
    weight: int
