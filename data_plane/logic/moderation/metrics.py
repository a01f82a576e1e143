"""Metrics of the moderation hook, on the logic node's registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from data_plane.metrics import LOGIC_REGISTRY as REGISTRY

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

MODERATION_CHECKS = Counter(
    "cirno_moderation_checks_total",
    "Messages checked by a tenant's moderation hook, by result: allowed, rejected, "
    "rewritten (body replaced), failed (no usable answer: down, slow, an error status or "
    "garbage; the tenant's fail-open or fail-closed setting then decided), resent (a "
    "resend of a stored message, not asked again)",
    ["result"],
    registry=REGISTRY,
)
MODERATION_SECONDS = Histogram(
    "cirno_moderation_seconds",
    "Duration of moderation hook calls, waiting for a free call slot included (any result)",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
MODERATION_IN_FLIGHT = Gauge(
    "cirno_moderation_in_flight",
    "Moderation hook calls running on this node (at most CIRNO_MODERATION_CONCURRENCY)",
    registry=REGISTRY,
)
