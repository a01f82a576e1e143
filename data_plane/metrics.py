"""Prometheus metrics of the data-plane processes, served on their own HTTP port.

Each gateway and logic node serves ``/metrics`` with ``/healthz`` and ``/readyz``
(:mod:`data_plane.probes`) on its own port when one is set, from a small thread, so
scraping never runs on the event loop. The ports are ``CIRNO_GATEWAY_METRICS_PORT``
(:attr:`GatewaySettings.metrics_port
<data_plane.gateway.settings.GatewaySettings.metrics_port>`) and
``CIRNO_LOGIC_METRICS_PORT`` (:attr:`LogicSettings.metrics_port
<data_plane.logic.settings.LogicSettings.metrics_port>`); unset or 0 serves none.
``cirno up`` sets them from ``--gateway-metrics-port`` / ``--logic-metrics-port``
(9100 / 9101 by default); a multi-node topology (``cirno/cluster.py``) unsets them,
since one port cannot serve several processes of a role (see docs/operations.md). The
control plane serves its own metrics on ``/metrics`` of its REST port.

Each role has its own registry: a gateway exports only gateway metrics and a logic node
only logic metrics (a gauge of the other role would read 0 there and mislead).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from data_plane.probes import Unmet, serve_probes

GATEWAY_REGISTRY = CollectorRegistry(auto_describe=True)
LOGIC_REGISTRY = CollectorRegistry(auto_describe=True)
REGISTRIES = {"gateway": GATEWAY_REGISTRY, "logic": LOGIC_REGISTRY}

UP = Gauge("cirno_up", "1 while the process serves", ["role"], registry=None)
for _registry in REGISTRIES.values():
    _registry.register(UP)

# Gateway
CONNECTIONS = Gauge(
    "cirno_gateway_connections", "Open client connections", ["transport"], registry=GATEWAY_REGISTRY
)
LOGINS = Counter(
    "cirno_gateway_logins_total", "Login attempts by result", ["result"], registry=GATEWAY_REGISTRY
)
CLOSES = Counter(
    "cirno_gateway_closes_total",
    "Client connections closed by code",
    ["code"],
    registry=GATEWAY_REGISTRY,
)
LOGIC_LINKS = Gauge("cirno_gateway_logic_links_up", "Logic links up", registry=GATEWAY_REGISTRY)
SEQUENCER = Counter(
    "cirno_gateway_sequencer_total",
    "Pushes off the in-order path and what became of holes, by event: duplicate "
    "(dropped: the client has it), held (out of order), fill (rows asked again from "
    "the store), filled (rows that came back), resync (connection closed with 4007)",
    ["event"],
    registry=GATEWAY_REGISTRY,
)
HEARTBEATS = Counter(
    "cirno_gateway_heartbeats_total",
    "Registry heartbeats by result (while they fail, quotas use the last known counts)",
    ["result"],
    registry=GATEWAY_REGISTRY,
)
REVOKED = Counter(
    "cirno_gateway_revoked_total",
    "Connections closed because a tenant was disabled or deleted, an account banned or a "
    "signing key revoked, by cause",
    ["cause"],
    registry=GATEWAY_REGISTRY,
)

# Logic node
REQUESTS = Counter(
    "cirno_logic_requests_total",
    "Requests by command and outcome (ok, client_error: the client's mistake, error: a fault)",
    ["command", "outcome"],
    registry=LOGIC_REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "cirno_logic_request_seconds",
    "Time from a request's arrival to its handler's end, by command",
    ["command"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    registry=LOGIC_REGISTRY,
)
GATEWAY_LINKS = Gauge("cirno_logic_gateway_links", "Gateway links up", registry=LOGIC_REGISTRY)
PUSHES_DEFERRED = Counter(
    "cirno_logic_pushes_deferred_total",
    "Pushes kept to retry, by reason (session_store failing, gateway_link down or full)",
    ["reason"],
    registry=LOGIC_REGISTRY,
)
PUSHES_GIVEN_UP = Counter(
    "cirno_logic_pushes_given_up_total",
    "Kept pushes given up after the hold time, or at once when too many wait (full); "
    "the gateway's sequencer has such rows pushed again from the store",
    ["reason"],
    registry=LOGIC_REGISTRY,
)
PUSHES_PENDING = Gauge(
    "cirno_logic_pushes_pending", "Pushes kept to retry now", registry=LOGIC_REGISTRY
)


def _always_ready() -> list[str]:
    return []


def serve_metrics(role: str, host: str, port: int | None, unmet: Unmet = _always_ready) -> None:
    """Start the metrics and probes thread when ``port`` is set, and mark the process
    up; ``unmet`` lists the readiness conditions that do not hold (``/readyz``)."""
    UP.labels(role).set(1)
    if port is None:
        return
    serve_probes(role, host, port, REGISTRIES[role], unmet)
