"""Smoke test of the benchmark code (``bench/``); the benchmarks themselves are not tests."""

from __future__ import annotations
