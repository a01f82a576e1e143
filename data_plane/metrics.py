"""Prometheus metrics of the data-plane processes, served on their own HTTP port.

Each gateway and logic node serves ``/metrics`` (the text exposition; any path answers)
on its own port when one is set, from a small thread of prometheus-client, so scraping
never runs on the event loop. ``cirno_up`` doubles as a liveness probe. The ports are
``CIRNO_GATEWAY_METRICS_PORT`` (:attr:`GatewaySettings.metrics_port
<data_plane.gateway.settings.GatewaySettings.metrics_port>`) and
``CIRNO_LOGIC_METRICS_PORT`` (:attr:`LogicSettings.metrics_port
<data_plane.logic.settings.LogicSettings.metrics_port>`); unset or 0 serves none.
``cirno up`` sets them from ``--gateway-metrics-port`` / ``--logic-metrics-port``
(9100 / 9101 by default); a multi-node topology (``cirno/cluster.py``) unsets them,
since one port cannot serve several processes of a role (see docs/operations.md). The
control plane serves its own metrics on ``/metrics`` of its REST port.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

UP = Gauge("cirno_up", "1 while the process serves", ["role"], registry=REGISTRY)

# Gateway
CONNECTIONS = Gauge(
    "cirno_gateway_connections", "Open client connections", ["transport"], registry=REGISTRY
)
LOGINS = Counter("cirno_gateway_logins_total", "Login attempts by result", ["result"],
                 registry=REGISTRY)  # fmt: skip
CLOSES = Counter(
    "cirno_gateway_closes_total", "Client connections closed by code", ["code"], registry=REGISTRY
)
LOGIC_LINKS = Gauge("cirno_gateway_logic_links_up", "Logic links up", registry=REGISTRY)
SEQUENCER = Counter(
    "cirno_gateway_sequencer_total",
    "Pushes off the in-order path and what became of holes, by event: duplicate "
    "(dropped: the client has it), held (out of order), fill (rows asked again from "
    "the store), filled (rows that came back), resync (connection closed with 4007)",
    ["event"],
    registry=REGISTRY,
)
HEARTBEATS = Counter(
    "cirno_gateway_heartbeats_total",
    "Registry heartbeats by result (while they fail, quotas use the last known counts)",
    ["result"],
    registry=REGISTRY,
)

# Logic node
REQUESTS = Counter(
    "cirno_logic_requests_total", "Requests by command and outcome", ["command", "outcome"],
    registry=REGISTRY,
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "cirno_logic_request_seconds",
    "Time from a request's arrival to its handler's end, by command",
    ["command"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
    registry=REGISTRY,
)
GATEWAY_LINKS = Gauge("cirno_logic_gateway_links", "Gateway links up", registry=REGISTRY)
PUSHES_DEFERRED = Counter(
    "cirno_logic_pushes_deferred_total",
    "Pushes kept to retry, by reason (session_store failing, gateway_link down or full)",
    ["reason"],
    registry=REGISTRY,
)
PUSHES_GIVEN_UP = Counter(
    "cirno_logic_pushes_given_up_total",
    "Kept pushes given up after the hold time, or at once when too many wait (full); "
    "the gateway's sequencer has such rows pushed again from the store",
    ["reason"],
    registry=REGISTRY,
)
PUSHES_PENDING = Gauge("cirno_logic_pushes_pending", "Pushes kept to retry now", registry=REGISTRY)


def serve_metrics(role: str, host: str, port: int | None) -> None:
    """Start the metrics thread when ``port`` is set, and mark the process up."""
    UP.labels(role).set(1)
    if port is None:
        return
    start_http_server(port, addr=host, registry=REGISTRY)
    log.info("%s metrics on http://%s:%d/metrics", role, host, port)
