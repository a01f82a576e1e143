"""Console settings, read from the environment.

- ``CIRNO_METRICS_TARGETS``: comma-separated URLs of the Prometheus endpoints of the
  gateways and logic nodes (``cirno up`` sets its two); the console's charts sum them.
  Without it the charts show the connections the nodes heartbeat, and no rates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from control_plane.errors import ConfigurationError

METRICS_TARGETS_ENV = "CIRNO_METRICS_TARGETS"


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """What the console needs beyond the control plane's own settings."""

    metrics_targets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsoleSettings:
        """Read ``CIRNO_METRICS_TARGETS``; :class:`ConfigurationError` for a URL that is
        not ``http(s)://host…``."""
        env = os.environ if environ is None else environ
        return cls(metrics_targets=parse_targets(env.get(METRICS_TARGETS_ENV, "")))


def parse_targets(raw: str) -> tuple[str, ...]:
    """``"http://a:9100/metrics, http://b:9101/metrics"`` → the URLs, in order."""
    targets: list[str] = []
    for item in raw.split(","):
        url = item.strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"{METRICS_TARGETS_ENV}: {url!r} is not an http(s) URL")
        targets.append(url)
    return tuple(targets)
