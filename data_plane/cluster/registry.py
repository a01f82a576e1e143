"""The data plane's client of the control plane's node registry and grayscale rules.

Gateways and logic nodes heartbeat their state (``POST /internal/v1/nodes/heartbeat``,
cluster secret); logic nodes get their message-id node number leased in the answer, and
gateways, which report their connections per quota-limited tenant, get the connections
the other live gateways hold per tenant (for cluster-wide connection quotas).
Gateways poll the live logic nodes (``GET /internal/v1/nodes?role=logic``) and the
grayscale rules (``GET /internal/v1/grayscale``) with ``If-None-Match``. Every call
fails soft: the caller keeps its last answer while the control plane is down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from data_plane.cluster.grayscale import GrayscaleError, GrayscaleRule, rules_from_json

log = logging.getLogger(__name__)

MAX_TENANT_COUNTS = 10_000
"""Most tenants a heartbeat reports (and its answer names) connection counts for."""


class RegistryUnavailable(Exception):
    """The control plane did not answer, or answered with an error."""


@dataclass(frozen=True, slots=True)
class NodeState:
    """What a node reports in each heartbeat."""

    id: str
    role: str
    zone: str
    region: str
    pool: str
    version: str
    connections: int
    capacity: int
    draining: bool = False
    ws_url: str | None = None
    tcp_addr: str | None = None
    link_addr: str | None = None
    tenant_connections: dict[str, int] = field(default_factory=dict)
    """Gateways: open connections per quota-limited tenant (at most MAX_TENANT_COUNTS)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A heartbeat's answer: the node-id lease of a logic node, valid until
    ``valid_until`` on this process's monotonic clock, and for a gateway the connections
    the other live gateways hold per quota-limited tenant (absent tenants: none)."""

    id_node: int | None
    valid_until: float
    ttl_s: float
    tenant_connections: dict[str, int] = field(default_factory=dict)


def parse_tenant_counts(raw: object) -> dict[str, int]:
    """A heartbeat answer's ``tenant_connections`` (absent: empty); ValueError when it is
    not an object of at most MAX_TENANT_COUNTS non-negative integers."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_TENANT_COUNTS:
        raise ValueError("tenant_connections must be an object of bounded size")
    counts: dict[str, int] = {}
    for tenant, count in raw.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"bad connection count for tenant {tenant!r}: {count!r}")
        counts[str(tenant)] = count
    return counts


@dataclass(frozen=True, slots=True)
class LogicNodeInfo:
    """A live logic node as gateways see it."""

    id: str
    zone: str
    host: str
    port: int


class RegistryClient:
    """Heartbeats and conditional polls against one control plane."""

    def __init__(self, control_url: str, cluster_secret: str, *, timeout: float = 3.0) -> None:
        self._base = control_url.rstrip("/")
        self._headers = {"X-Cirno-Cluster-Secret": cluster_secret}
        self._client = httpx.AsyncClient(timeout=timeout)
        self._etags: dict[str, str] = {}

    async def heartbeat(self, state: NodeState) -> Lease:
        """Report ``state``; raises :class:`RegistryUnavailable` on any failure."""
        sent_at = time.monotonic()
        try:
            response = await self._client.post(
                f"{self._base}/internal/v1/nodes/heartbeat",
                json=asdict(state),
                headers=self._headers,
            )
            response.raise_for_status()
            body = response.json()
            expires_at = body.get("id_node_expires_at")
            valid_for = (float(expires_at) - time.time()) if expires_at is not None else 0.0
            return Lease(
                id_node=body.get("id_node"),
                valid_until=sent_at + valid_for,
                ttl_s=float(body["ttl_s"]),
                tenant_connections=parse_tenant_counts(body.get("tenant_connections")),
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryUnavailable(f"heartbeat to {self._base} failed: {exc}") from exc

    async def _poll(self, path: str) -> Any | None:
        """The JSON at ``path``, or None when unchanged since the last poll."""
        headers = dict(self._headers)
        if path in self._etags:
            headers["If-None-Match"] = self._etags[path]
        try:
            response = await self._client.get(f"{self._base}{path}", headers=headers)
            if response.status_code == 304:
                return None
            response.raise_for_status()
            payload = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RegistryUnavailable(f"GET {path} failed: {exc}") from exc
        etag = response.headers.get("ETag")
        if etag:
            self._etags[path] = etag
        return payload

    async def logic_nodes(self) -> list[LogicNodeInfo] | None:
        """Live, non-draining logic nodes with a link address; None when unchanged."""
        payload = await self._poll("/internal/v1/nodes?role=logic")
        if payload is None:
            return None
        nodes: list[LogicNodeInfo] = []
        try:
            for item in payload["nodes"]:
                addr = item.get("link_addr") or ""
                host, sep, port = addr.rpartition(":")
                if item.get("draining") or not sep or not port.isdigit():
                    continue
                nodes.append(LogicNodeInfo(str(item["id"]), str(item["zone"]), host, int(port)))
        except (KeyError, TypeError) as exc:
            raise RegistryUnavailable(f"malformed logic node list: {exc}") from exc
        return nodes

    async def grayscale_rules(self) -> list[GrayscaleRule] | None:
        """The grayscale rules; None when unchanged."""
        payload = await self._poll("/internal/v1/grayscale")
        if payload is None:
            return None
        try:
            return rules_from_json(payload)
        except GrayscaleError as exc:
            raise RegistryUnavailable(f"malformed grayscale rules: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
