"""Tests of the control plane (REST API, migrations, OpenAPI contract)."""

from __future__ import annotations
