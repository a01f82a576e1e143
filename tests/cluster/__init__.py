"""Tests of data_plane.cluster (pure cluster logic)."""

from __future__ import annotations
