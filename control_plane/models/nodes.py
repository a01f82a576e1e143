"""The node registry: gateways and logic nodes heartbeat; a silent node expires.

A node row is live while ``expires_at`` (its last heartbeat plus the node TTL) is in
the future. Logic nodes also hold an ``id_leases`` row: the 10-bit node id of their
message ids, unique among unexpired leases (the primary key enforces uniqueness of the
number, the unique ``node_id`` one lease per node).
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from control_plane.models.common import DOUBLE_TYPE, MYSQL_TABLE, string_enum

NODE_ID_PATTERN = r"^[^\s,{}\x00-\x1f\x7f]{1,64}$"
NODE_ID_MAX = 64
LABEL_MAX = 64
URL_MAX = 512
ADDR_MAX = 256
INT32_MAX = 2**31 - 1


class NodeRole(StrEnum):
    """What a node does."""

    GATEWAY = "gateway"
    LOGIC = "logic"


ROLE_TYPE = string_enum(NodeRole)


class HeartbeatIn(SQLModel):
    """Body of ``POST /internal/v1/nodes/heartbeat``: a node's current state."""

    model_config = ConfigDict(extra="ignore")  # type: ignore[assignment]

    id: str = Field(
        min_length=1,
        max_length=NODE_ID_MAX,
        schema_extra={"pattern": NODE_ID_PATTERN},
        description="Stable id of the node (no spaces, commas, braces or control chars).",
    )
    role: NodeRole
    zone: str = Field(max_length=LABEL_MAX, description="Availability zone, e.g. `eu-1a`.")
    region: str = Field(max_length=LABEL_MAX, description="Region id the node serves.")
    pool: str = Field(
        default="",
        max_length=LABEL_MAX,
        description='Gateway pool / version label; "" or `stable` is the default pool.',
    )
    version: str = Field(max_length=LABEL_MAX)
    ws_url: str | None = Field(default=None, max_length=URL_MAX, description="Gateways.")
    tcp_addr: str | None = Field(default=None, max_length=ADDR_MAX, description="Gateways.")
    link_addr: str | None = Field(
        default=None, max_length=ADDR_MAX, description="Logic nodes: host:port gateways dial."
    )
    connections: int = Field(ge=0, le=INT32_MAX)
    capacity: int = Field(ge=1, le=INT32_MAX)
    draining: bool = False


class HeartbeatOut(SQLModel):
    """Answer to a heartbeat: when to beat again at the latest, and the node-id lease."""

    ttl_s: float = Field(description="The node expires this long after this heartbeat.")
    id_node: int | None = Field(
        description="Logic nodes: the leased node id (0..1023); null for gateways or when "
        "every id is leased (retry on the next heartbeat)."
    )
    id_node_expires_at: float | None = Field(
        description="Epoch seconds when the lease lapses without another heartbeat."
    )


class Node(SQLModel, table=True):
    """A node's last heartbeat."""

    __tablename__ = "nodes"
    __table_args__ = MYSQL_TABLE

    id: str = Field(primary_key=True, max_length=NODE_ID_MAX)
    role: NodeRole = Field(sa_type=ROLE_TYPE)
    zone: str = Field(max_length=LABEL_MAX)
    region: str = Field(max_length=LABEL_MAX)
    pool: str = Field(max_length=LABEL_MAX)
    version: str = Field(max_length=LABEL_MAX)
    ws_url: str | None = Field(default=None, max_length=URL_MAX)
    tcp_addr: str | None = Field(default=None, max_length=ADDR_MAX)
    link_addr: str | None = Field(default=None, max_length=ADDR_MAX)
    connections: int
    capacity: int
    draining: bool
    first_seen: float = Field(sa_type=DOUBLE_TYPE)
    last_seen: float = Field(sa_type=DOUBLE_TYPE)
    expires_at: float = Field(sa_type=DOUBLE_TYPE, index=True)


class IdLease(SQLModel, table=True):
    """A leased node id: ``number`` belongs to ``node_id`` until ``expires_at``."""

    __tablename__ = "id_leases"
    __table_args__ = (sa.UniqueConstraint("node_id", name="uq_id_leases_node_id"), MYSQL_TABLE)

    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    node_id: str = Field(max_length=NODE_ID_MAX)
    expires_at: float = Field(sa_type=DOUBLE_TYPE)


class NodeInfo(SQLModel):
    """A live node as gateways and logic nodes read it (no timestamps: stable ETags)."""

    id: str
    role: NodeRole
    zone: str
    region: str
    pool: str
    version: str
    ws_url: str | None
    tcp_addr: str | None
    link_addr: str | None
    connections: int
    capacity: int
    draining: bool
    id_node: int | None


class NodesInfo(SQLModel):
    """Body of ``GET /internal/v1/nodes``."""

    nodes: list[NodeInfo]


class NodePublic(NodeInfo):
    """A live node as the admin API shows it, with its load and timestamps."""

    load: float = Field(description="connections / capacity")
    last_seen: float = Field(description="Epoch seconds of the last heartbeat.")
    expires_at: float = Field(description="Epoch seconds when the node expires.")


class NodesPublic(SQLModel):
    """Body of ``GET /v1/nodes``."""

    data: list[NodePublic]
