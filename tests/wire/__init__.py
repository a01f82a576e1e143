"""Tests of the sans-I/O wire codec ``data_plane.wire``."""

from __future__ import annotations
