"""``/v1/nodes``: the live nodes of the registry, with their load (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from control_plane.db import SessionDep
from control_plane.deps import NowDep, require_admin
from control_plane.models import NodePublic, NodeRole, NodesPublic
from control_plane.registry import live_leases, live_nodes
from control_plane.routes import ADMIN_ERRORS

router = APIRouter(
    prefix="/v1/nodes",
    tags=["nodes"],
    dependencies=[Depends(require_admin)],
    responses=ADMIN_ERRORS,
)


@router.get("", summary="List live nodes", operation_id="nodes-list")
def list_nodes(
    session: SessionDep,
    now: NowDep,
    role: Annotated[NodeRole | None, Query(description="Only nodes of this role.")] = None,
) -> NodesPublic:
    """Every unexpired node ordered by id, with its load (connections / capacity), its
    last heartbeat and expiry (epoch seconds), and its leased node id (logic nodes).
    """
    leases = live_leases(session, now)
    return NodesPublic(
        data=[
            NodePublic.model_validate(
                node,
                update={
                    "id_node": leases.get(node.id),
                    "load": node.connections / max(node.capacity, 1),
                },
            )
            for node in live_nodes(session, now, role)
        ]
    )
