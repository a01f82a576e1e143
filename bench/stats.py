"""Latency samples, percentiles and the machine a run happened on."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any


@dataclass(frozen=True, slots=True)
class Summary:
    """Percentiles of a set of latencies, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    def as_dict(self) -> dict[str, float | int]:
        """JSON-friendly form (rounded to microseconds)."""
        return {
            "count": self.count,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (``fraction`` in [0, 1])."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(seconds: list[float]) -> Summary:
    """p50 / p99 / max / mean of latencies given in seconds, reported in milliseconds."""
    if not seconds:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    ordered = sorted(seconds)
    return Summary(
        count=len(ordered),
        p50_ms=percentile(ordered, 0.50) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=ordered[-1] * 1000,
        mean_ms=sum(ordered) / len(ordered) * 1000,
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, Python and the libraries on the hot path, and the load average."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "uvloop": _version("uvloop"),
        "picows": _version("picows"),
        "protobuf": _version("protobuf"),
        "sqlalchemy": _version("sqlalchemy"),
        "loadavg_at_start": [round(value, 2) for value in load],
        "note": "server processes and the load generator share these cores (nothing pinned)",
    }
