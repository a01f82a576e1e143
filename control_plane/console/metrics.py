"""Live chart figures from the Prometheus text the data-plane processes already export.

Theory of operation
-------------------
Gateways and logic nodes serve their counters on their metrics ports
(``data_plane.metrics``). A scrape of every target is summed into one :class:`Totals`:
cumulative counters (messages, logins), the open connections (a gauge) and the
cumulative buckets of the logic request-latency histogram. Two consecutive totals make
one chart :class:`Point`: counter deltas over the elapsed time give messages/s and
logins/s, and the bucket deltas give the p99 of the requests answered in between, the
way Prometheus' ``histogram_quantile(0.99, rate(...))`` computes it (linear inside the
bucket). A counter that went down was reset (its process restarted): its new value is
the delta, as Prometheus' ``rate`` assumes.

This module is pure: :func:`parse_totals` takes text, :class:`History` takes totals with
their timestamps; the scraping (I/O) is in ``control_plane.console.scrape``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

MESSAGE_COMMANDS = frozenset({"chat.user.talk", "chat.group.talk"})
"""Logic requests that are messages sent (1:1 and group)."""
QUANTILE = 0.99
HISTORY_POINTS = 300
"""Points kept: five minutes at one sample a second."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Figures summed over every scraped process at one instant."""

    messages: float = 0.0
    logins: float = 0.0
    connections: float = 0.0
    latency_buckets: tuple[tuple[float, float], ...] = ()
    """``(upper bound in seconds, cumulative count)``, ascending, ``+Inf`` last."""


@dataclass(frozen=True, slots=True)
class Point:
    """One chart sample: rates over the interval that ends at ``at`` (epoch seconds)."""

    at: float
    messages_per_s: float
    logins_per_s: float
    connections: float
    p99_ms: float | None
    """None when no request was answered during the interval."""


def parse_totals(texts: Iterable[str]) -> Totals:
    """Sum the Prometheus exposition ``texts`` (one per process) into :class:`Totals`.

    Raises ``ValueError`` for text that is not the Prometheus exposition format.
    """
    messages = logins = connections = 0.0
    buckets: dict[float, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "cirno_logic_requests_total":
                    if labels.get("command") in MESSAGE_COMMANDS:
                        messages += value
                elif name == "cirno_gateway_logins_total":
                    logins += value
                elif name == "cirno_gateway_connections":
                    connections += value
                elif name == "cirno_logic_request_seconds_bucket":
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + value
    return Totals(messages, logins, connections, tuple(sorted(buckets.items())))


def combine(parts: Iterable[Totals]) -> Totals:
    """The sum of the totals of several processes (histogram buckets added by bound;
    every process uses the same bounds)."""
    messages = logins = connections = 0.0
    buckets: dict[float, float] = {}
    for part in parts:
        messages += part.messages
        logins += part.logins
        connections += part.connections
        for bound, count in part.latency_buckets:
            buckets[bound] = buckets.get(bound, 0.0) + count
    return Totals(messages, logins, connections, tuple(sorted(buckets.items())))


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative histogram ``buckets`` (ascending bounds), linear
    inside its bucket like Prometheus' ``histogram_quantile``; None for no observations.

    A quantile that falls in the ``+Inf`` bucket is the highest finite bound.
    """
    ordered = list(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta(new: float, old: float) -> float:
    return new if new < old else new - old  # a counter that went down was reset


class History:
    """The last :data:`HISTORY_POINTS` chart points, made from successive totals."""

    def __init__(self, limit: int = HISTORY_POINTS) -> None:
        self.points: deque[Point] = deque(maxlen=limit)
        self.last: tuple[float, Totals] | None = None

    def observe(self, at: float, totals: Totals) -> Point | None:
        """Record the totals scraped at ``at``; returns the new point (None for the first
        totals, or when the clock did not move forward)."""
        previous, self.last = self.last, (at, totals)
        if previous is None or at <= previous[0]:
            return None
        before_at, before = previous
        elapsed = at - before_at
        old_buckets = dict(before.latency_buckets)
        window = [
            (bound, _delta(count, old_buckets.get(bound, 0.0)))
            for bound, count in totals.latency_buckets
        ]
        p99 = quantile(QUANTILE, window)
        point = Point(
            at=at,
            messages_per_s=_delta(totals.messages, before.messages) / elapsed,
            logins_per_s=_delta(totals.logins, before.logins) / elapsed,
            connections=totals.connections,
            p99_ms=None if p99 is None else p99 * 1000.0,
        )
        self.points.append(point)
        return point
