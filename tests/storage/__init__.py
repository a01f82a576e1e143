"""Storage contract suites, one per Protocol, run against every implementation."""

from __future__ import annotations
