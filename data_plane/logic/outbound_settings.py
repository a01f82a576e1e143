"""Settings of webhook and push delivery in a logic node, read from the environment.

Every queue is bounded: the outbox is drained ``fan_out_batch`` rows at a time; an
endpoint's queue is drained in order and each delivery ends delivered or failed within
``max_attempts`` attempts and ``max_age_s``; finished deliveries are deleted after
``retention_s``; push jobs are one per token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """Webhook and push delivery tunables (``CIRNO_WEBHOOK_*``, ``CIRNO_PUSH_*``)."""

    poll_interval: float = 0.2
    """Seconds between two looks at the outbox and the queues when they were idle."""
    timeout: float = 5.0
    """Seconds one HTTP request (webhook or push) may take, connect included."""
    concurrency: int = 16
    """Endpoints (and push jobs) served at once by one node."""
    max_attempts: int = 8
    """Attempts per delivery before it is marked failed."""
    max_age_s: float = 3600.0
    """A delivery still failing this long after its first attempt is marked failed."""
    backoff_base_s: float = 1.0
    """Wait after the first failed attempt; doubled after each next one."""
    backoff_max_s: float = 300.0
    """Longest wait between two attempts."""
    lease_s: float = 30.0
    """How long a node holds an endpoint (or the push queue) without renewing it."""
    retention_s: float = 7 * 86400.0
    """Finished deliveries are listed over REST this long, then deleted."""
    fan_out_batch: int = 500
    """Outbox rows fanned out per transaction."""
    endpoint_batch: int = 50
    """Deliveries of one endpoint read per look (sent one by one, in order)."""
    push_batch: int = 100
    """Push jobs taken per look."""

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return min(self.backoff_max_s, self.backoff_base_s * float(2 ** max(0, attempts - 1)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboundSettings:
        """Read ``CIRNO_WEBHOOK_*`` / ``CIRNO_PUSH_*``; unset variables keep defaults."""
        env = os.environ if environ is None else environ
        d = cls()

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            value = float(raw) if raw else default
            if value < 0:
                raise ValueError(f"{name} must not be negative")
            return value

        return cls(
            poll_interval=number("CIRNO_WEBHOOK_POLL_INTERVAL", d.poll_interval),
            timeout=number("CIRNO_WEBHOOK_TIMEOUT", d.timeout),
            concurrency=max(1, int(number("CIRNO_WEBHOOK_CONCURRENCY", d.concurrency))),
            max_attempts=max(1, int(number("CIRNO_WEBHOOK_MAX_ATTEMPTS", d.max_attempts))),
            max_age_s=number("CIRNO_WEBHOOK_MAX_AGE", d.max_age_s),
            backoff_base_s=number("CIRNO_WEBHOOK_BACKOFF", d.backoff_base_s),
            backoff_max_s=number("CIRNO_WEBHOOK_BACKOFF_MAX", d.backoff_max_s),
            lease_s=number("CIRNO_WEBHOOK_LEASE", d.lease_s),
            retention_s=number("CIRNO_WEBHOOK_RETENTION", d.retention_s),
            fan_out_batch=max(1, int(number("CIRNO_WEBHOOK_FAN_OUT_BATCH", d.fan_out_batch))),
            endpoint_batch=max(1, int(number("CIRNO_WEBHOOK_ENDPOINT_BATCH", d.endpoint_batch))),
            push_batch=max(1, int(number("CIRNO_PUSH_BATCH", d.push_batch))),
        )
