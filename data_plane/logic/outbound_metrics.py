"""Metrics of webhook and push deliveries, on the logic node's registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from data_plane.metrics import LOGIC_REGISTRY as REGISTRY

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

WEBHOOK_ATTEMPTS = Counter(
    "cirno_webhook_deliveries_total",
    "Webhook delivery attempts by result: sent (2xx), retried (will be tried again), "
    "failed (attempts or time spent)",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "cirno_webhook_delivery_seconds",
    "Duration of webhook delivery attempts (any result)",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Counter(
    "cirno_webhook_events_total",
    "Events written to the outbox outside the send transaction, by result",
    ["result"],
    registry=REGISTRY,
)
PUSH_ATTEMPTS = Counter(
    "cirno_push_notifications_total",
    "Push notification attempts by result: sent, retried, failed; queued and cancelled count jobs",
    ["result"],
    registry=REGISTRY,
)
PUSH_SECONDS = Histogram(
    "cirno_push_send_seconds",
    "Duration of requests to push providers (any result)",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
OUTBOUND_BACKLOG = Gauge(
    "cirno_outbound_backlog",
    "Rows waiting in the shared message database: outbox (events not fanned out yet) and "
    "deliveries (pending webhook deliveries)",
    ["queue"],
    registry=REGISTRY,
)
