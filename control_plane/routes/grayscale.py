"""``/v1/grayscale/rules``: the ordered rules choosing gateway pools and logic zones.

Rules are evaluated by ascending ``priority`` (see ``data_plane.cluster.grayscale``):
two rules with the same priority would be contradictory (which one wins?), so a
duplicate priority is a 409. Invalid rules (no action, no condition, percent out of
range, ``min_version`` above ``max_version``) are 422s. Changes reach route answers at
once and gateways on their next poll of ``GET /internal/v1/grayscale``.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control_plane.db import SessionDep
from control_plane.deps import NowDep, invalidate_routes, require_admin, unprocessable
from control_plane.models import (
    GrayscaleRuleRow,
    RuleCreate,
    RuleFields,
    RulePublic,
    RulesPublic,
    RuleUpdate,
    as_datetime,
    commit_change,
)
from control_plane.models.common import SLUG_MAX, SLUG_PATTERN
from control_plane.routes import ADMIN_ERRORS, BAD_BODY, error_responses
from data_plane.cluster.grayscale import rule_problems

router = APIRouter(
    prefix="/v1/grayscale/rules",
    tags=["grayscale"],
    dependencies=[Depends(require_admin)],
    responses=ADMIN_ERRORS,
)

RuleIdPath = Annotated[
    str, Path(max_length=SLUG_MAX, pattern=SLUG_PATTERN, description="The rule id.")
]
NOT_FOUND = error_responses(e404="No rule has this id.")
CONTRADICTORY = error_responses(
    e409="Contradictory: another rule has this priority (or the id exists)."
)


def _get_or_404(session: Session, rule_id: str) -> GrayscaleRuleRow:
    row = session.get(GrayscaleRuleRow, rule_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="rule not found")
    return row


def _check_priority(session: Session, priority: int, rule_id: str) -> None:
    clash = session.exec(
        select(GrayscaleRuleRow).where(
            GrayscaleRuleRow.priority == priority, GrayscaleRuleRow.id != rule_id
        )
    ).first()
    if clash is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"contradictory: rule {clash.id!r} already has priority {priority}",
        )


def _commit(session: Session) -> None:
    try:
        commit_change(session)
    except IntegrityError as exc:  # a concurrent write took the priority (or the id)
        session.rollback()
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="contradictory: the priority or id was just taken"
        ) from exc


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a grayscale rule",
    operation_id="grayscale-rules-create",
    responses={**BAD_BODY, **CONTRADICTORY},
)
def create_rule(body: RuleCreate, session: SessionDep, now: NowDep, request: Request) -> RulePublic:
    """Add a rule. It needs at least one condition (tenant, accounts, percent, version
    range, platforms, regions) and one action (gateway_pool, logic_zone).
    """
    rule_id = body.id or "r-" + secrets.token_hex(6)
    if session.get(GrayscaleRuleRow, rule_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="rule exists")
    _check_priority(session, body.priority, rule_id)
    stamp = as_datetime(now)
    fields = RuleFields.model_validate(body.model_dump(exclude={"id"}))
    row = GrayscaleRuleRow(
        id=rule_id, created_at=stamp, updated_at=stamp, **GrayscaleRuleRow.columns(fields)
    )
    session.add(row)
    _commit(session)
    invalidate_routes(request)
    session.refresh(row)
    return row.public()


@router.get("", summary="List grayscale rules", operation_id="grayscale-rules-list")
def list_rules(session: SessionDep) -> RulesPublic:
    """Every rule in evaluation order (ascending priority)."""
    rows = session.exec(select(GrayscaleRuleRow).order_by(col(GrayscaleRuleRow.priority)))
    return RulesPublic(data=[row.public() for row in rows])


@router.get(
    "/{rule_id}",
    summary="Get a grayscale rule",
    operation_id="grayscale-rules-get",
    responses=NOT_FOUND,
)
def get_rule(rule_id: RuleIdPath, session: SessionDep) -> RulePublic:
    """One rule."""
    return _get_or_404(session, rule_id).public()


@router.patch(
    "/{rule_id}",
    summary="Update a grayscale rule",
    operation_id="grayscale-rules-update",
    responses={**BAD_BODY, **NOT_FOUND, **CONTRADICTORY},
)
def update_rule(
    rule_id: RuleIdPath, body: RuleUpdate, session: SessionDep, now: NowDep, request: Request
) -> RulePublic:
    """Change some fields of a rule (`null` clears an optional condition or action); the
    resulting rule must still be valid. Route answers follow at once.
    """
    row = _get_or_404(session, rule_id)
    changes = body.changes()
    if not changes:
        return row.public()
    merged = RuleFields.model_validate({**row.fields().model_dump(), **changes})
    problems = rule_problems(merged.as_rule(rule_id))
    if problems:
        unprocessable("; ".join(problems))
    if "priority" in changes:
        _check_priority(session, merged.priority, rule_id)
    row.store(merged)
    row.updated_at = as_datetime(now)
    session.add(row)
    _commit(session)
    invalidate_routes(request)
    session.refresh(row)
    return row.public()


@router.delete(
    "/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a grayscale rule",
    operation_id="grayscale-rules-delete",
    responses=NOT_FOUND,
)
def delete_rule(rule_id: RuleIdPath, session: SessionDep, request: Request) -> None:
    """Delete a rule; route answers follow at once, gateways on their next poll."""
    session.delete(_get_or_404(session, rule_id))
    commit_change(session)
    invalidate_routes(request)
