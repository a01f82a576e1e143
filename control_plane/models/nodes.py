"""The node registry: gateways and logic nodes heartbeat; a silent node expires.

A node row is live while ``expires_at`` (its last heartbeat plus the node TTL) is in
the future. Logic nodes also hold an ``id_leases`` row: the 10-bit node id of their
message ids, unique among unexpired leases (the primary key enforces uniqueness of the
number, the unique ``node_id`` one lease per node). Gateways report their connections
per tenant (``node_tenant_connections``), which count towards a tenant's cluster-wide
``max_connections`` while the gateway is live.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import sqlalchemy as sa
from pydantic import ConfigDict, StringConstraints
from sqlmodel import Field, SQLModel

from control_plane.models.common import DOUBLE_TYPE, MYSQL_TABLE, string_enum
from control_plane.models.tenants import TENANT_ID_MAX, TENANT_ID_PATTERN
from data_plane.cluster.registry import MAX_TENANT_COUNTS

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

TenantIdKey = Annotated[
    str, StringConstraints(min_length=1, max_length=TENANT_ID_MAX, pattern=TENANT_ID_PATTERN)
]
ConnectionCount = Annotated[int, Field(ge=0, le=INT32_MAX)]


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
    tenant_connections: dict[TenantIdKey, ConnectionCount] = Field(
        default_factory=dict,
        max_length=MAX_TENANT_COUNTS,
        description="Gateways: open connections per tenant id, for the tenants with a "
        "connection quota that have at least one here (at most "
        f"{MAX_TENANT_COUNTS:,}, the largest counts). Replaces the node's previous report; "
        "counts towards the tenants' cluster-wide `max_connections` while the node is live.",
    )


class HeartbeatOut(SQLModel):
    """Answer to a heartbeat: when to beat again at the latest, the node-id lease, and
    (gateways) the connections the other live gateways hold per quota-limited tenant."""

    ttl_s: float = Field(description="The node expires this long after this heartbeat.")
    id_node: int | None = Field(
        description="Logic nodes: the leased node id (0..1023); null for gateways or when "
        "every id is leased (retry on the next heartbeat)."
    )
    id_node_expires_at: float | None = Field(
        description="Epoch seconds when the lease lapses without another heartbeat."
    )
    tenant_connections: dict[str, int] = Field(
        default_factory=dict,
        description="Gateways: per tenant with a connection quota, the connections the "
        "*other* live gateways reported in their last heartbeats (at most "
        f"{MAX_TENANT_COUNTS:,}, the largest). Left out when empty: a tenant not named "
        "holds no connection elsewhere.",
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


class NodeTenantConnections(SQLModel, table=True):
    """A gateway's open connections of one tenant, as of its last heartbeat.

    They count towards the tenant's ``max_connections`` only while the node's row is live
    (``nodes.expires_at`` in the future), so an expired gateway stops counting without
    anyone deleting its rows; its next heartbeat replaces them.
    """

    __tablename__ = "node_tenant_connections"
    __table_args__ = MYSQL_TABLE

    node_id: str = Field(primary_key=True, max_length=NODE_ID_MAX)
    tenant_id: str = Field(primary_key=True, max_length=TENANT_ID_MAX)
    connections: int


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
