"""``/v1/regions``: which countries and continents go to which region, and its zones.

A country (or continent) belongs to one region at most: claiming one that another
region holds is a 409 naming it. Exactly one region is the default: the first region
created becomes it, making another region the default takes it over, and the default
region can be deleted only when it is the last one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, func, select

from control_plane.db import SessionDep
from control_plane.deps import NowDep, invalidate_routes, require_admin
from control_plane.models import (
    Continent,
    Region,
    RegionContinent,
    RegionCountry,
    RegionCreate,
    RegionPublic,
    RegionsPublic,
    RegionUpdate,
    RegionZone,
    ZoneWeight,
    as_datetime,
    commit_change,
)
from control_plane.models.common import SLUG_MAX, SLUG_PATTERN
from control_plane.routes import ADMIN_ERRORS, BAD_BODY, error_responses

router = APIRouter(
    prefix="/v1/regions",
    tags=["regions"],
    dependencies=[Depends(require_admin)],
    responses=ADMIN_ERRORS,
)

RegionIdPath = Annotated[
    str, Path(max_length=SLUG_MAX, pattern=SLUG_PATTERN, description="The region id.")
]
NOT_FOUND = error_responses(e404="No region has this id.")
CONFLICTS = error_responses(
    e409="A country or continent is claimed by another region, or the id exists."
)


def _get_or_404(session: Session, region_id: str) -> Region:
    region = session.get(Region, region_id)
    if region is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="region not found")
    return region


def _public(session: Session, region: Region) -> RegionPublic:
    countries = session.exec(
        select(RegionCountry.country)
        .where(RegionCountry.region_id == region.id)
        .order_by(col(RegionCountry.country))
    ).all()
    continents = session.exec(
        select(RegionContinent.continent)
        .where(RegionContinent.region_id == region.id)
        .order_by(col(RegionContinent.continent))
    ).all()
    zones = session.exec(
        select(RegionZone).where(RegionZone.region_id == region.id).order_by(col(RegionZone.zone))
    ).all()
    return RegionPublic(
        id=region.id,
        name=region.name,
        countries=list(countries),
        continents=[Continent(c) for c in continents],
        zones=[ZoneWeight(zone=z.zone, weight=z.weight) for z in zones],
        is_default=region.is_default,
        created_at=region.created_at,
        updated_at=region.updated_at,
    )


def _claimed(
    session: Session, region_id: str, countries: list[str], continents: list[str]
) -> str | None:
    """A description of codes already held by other regions, or None."""
    taken = session.exec(
        select(RegionCountry).where(
            col(RegionCountry.country).in_(countries), RegionCountry.region_id != region_id
        )
    ).all()
    taken_continents = session.exec(
        select(RegionContinent).where(
            col(RegionContinent.continent).in_(continents), RegionContinent.region_id != region_id
        )
    ).all()
    claims = [f"country {t.country} belongs to region {t.region_id!r}" for t in taken] + [
        f"continent {t.continent} belongs to region {t.region_id!r}" for t in taken_continents
    ]
    return "; ".join(claims) or None


def _replace_children(
    session: Session,
    region_id: str,
    countries: list[str] | None,
    continents: list[Continent] | None,
    zones: list[ZoneWeight] | None,
) -> None:
    if countries is not None:
        session.exec(delete(RegionCountry).where(col(RegionCountry.region_id) == region_id))
        session.add_all(RegionCountry(country=c, region_id=region_id) for c in countries)
    if continents is not None:
        session.exec(delete(RegionContinent).where(col(RegionContinent.region_id) == region_id))
        session.add_all(RegionContinent(continent=c.value, region_id=region_id) for c in continents)
    if zones is not None:
        session.exec(delete(RegionZone).where(col(RegionZone.region_id) == region_id))
        session.add_all(
            RegionZone(region_id=region_id, zone=z.zone, weight=z.weight) for z in zones
        )


def _make_default(session: Session, region: Region) -> None:
    session.exec(
        update(Region)
        .where(col(Region.id) != region.id, col(Region.is_default).is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session=False)
    )
    region.is_default = True


def _commit(session: Session, conflict: str) -> None:
    try:
        commit_change(session)
    except IntegrityError as exc:  # a concurrent write claimed a code (or the id) first
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, detail=conflict) from exc


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a region",
    operation_id="regions-create",
    responses={**BAD_BODY, **CONFLICTS},
)
def create_region(
    body: RegionCreate, session: SessionDep, now: NowDep, request: Request
) -> RegionPublic:
    """Create a region. The first region becomes the default whatever `is_default` says;
    `is_default: true` takes the default over from the current one.
    """
    if session.get(Region, body.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="region exists")
    claimed = _claimed(session, body.id, body.countries, [c.value for c in body.continents])
    if claimed:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=claimed)
    stamp = as_datetime(now)
    region = Region(id=body.id, name=body.name, created_at=stamp, updated_at=stamp)
    has_default = session.exec(select(func.count()).where(col(Region.is_default).is_(True))).one()
    if body.is_default or not has_default:
        _make_default(session, region)
    session.add(region)
    session.flush()
    _replace_children(session, region.id, body.countries, body.continents, body.zones)
    _commit(session, "region exists, or a country or continent was claimed concurrently")
    invalidate_routes(request)
    session.refresh(region)
    return _public(session, region)


@router.get("", summary="List regions", operation_id="regions-list")
def list_regions(session: SessionDep) -> RegionsPublic:
    """Every region ordered by id."""
    regions = session.exec(select(Region).order_by(col(Region.id))).all()
    return RegionsPublic(data=[_public(session, r) for r in regions], count=len(regions))


@router.get("/{region_id}", summary="Get a region", operation_id="regions-get", responses=NOT_FOUND)
def get_region(region_id: RegionIdPath, session: SessionDep) -> RegionPublic:
    """One region with its countries, continents and zones."""
    return _public(session, _get_or_404(session, region_id))


@router.patch(
    "/{region_id}",
    summary="Update a region",
    operation_id="regions-update",
    responses={
        **BAD_BODY,
        **NOT_FOUND,
        **error_responses(
            e409="A country or continent is claimed by another region, or `is_default: "
            "false` on the default region (make another region the default instead)."
        ),
    },
)
def update_region(
    region_id: RegionIdPath, body: RegionUpdate, session: SessionDep, now: NowDep, request: Request
) -> RegionPublic:
    """Rename a region, replace its countries, continents or zones, or make it the
    default. Lists given replace the stored ones whole.
    """
    region = _get_or_404(session, region_id)
    changes = body.changes()
    if not changes:
        return _public(session, region)
    if body.is_default is False and region.is_default:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="a default region is required: make another region the default instead",
        )
    continents = [c.value for c in body.continents or []]
    claimed = _claimed(session, region_id, body.countries or [], continents)
    if claimed:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=claimed)
    if body.name is not None:
        region.name = body.name
    if body.is_default:
        _make_default(session, region)
    region.updated_at = as_datetime(now)
    session.add(region)
    _replace_children(session, region_id, body.countries, body.continents, body.zones)
    _commit(session, "a country or continent was claimed concurrently")
    invalidate_routes(request)
    session.refresh(region)
    return _public(session, region)


@router.delete(
    "/{region_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a region",
    operation_id="regions-delete",
    responses={
        **NOT_FOUND,
        **error_responses(e409="The default region, while other regions exist."),
    },
)
def delete_region(region_id: RegionIdPath, session: SessionDep, request: Request) -> None:
    """Delete a region with its country, continent and zone mappings. The default region
    can only be deleted when it is the last one (make another region the default first).
    """
    region = _get_or_404(session, region_id)
    if region.is_default:
        others = session.exec(select(func.count()).where(col(Region.id) != region_id)).one()
        if others:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail="cannot delete the default region: make another region the default",
            )
    _replace_children(session, region_id, [], [], [])
    session.delete(region)
    commit_change(session)
    invalidate_routes(request)
