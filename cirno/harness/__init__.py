"""The process harness shared by the tests and the benchmarks.

It starts the real console script on free ports (``cirno up``, or each role as its own
process), mints tenant tokens and speaks the raw wire protocol, so ``tests/`` and
``bench/`` drive exactly what a user deploys.

Why here, inside the ``cirno`` package: the harness is an operator of processes, like
:mod:`cirno.cluster` (which ``cirno up`` uses), and like it may import every part of
the system (it migrates the control plane's database before a topology starts). It
ships with the installed project (``pyproject.toml`` packages ``cirno*``), so
``bench/`` needs no import of ``tests`` and the layering rule "nothing imports tests"
holds. Its dependencies (anyio, httpx, PyJWT) are already runtime dependencies; nothing
in the servers imports it.
"""

from __future__ import annotations

from cirno.harness.ports import free_port
from cirno.harness.processes import (
    ADMIN_TOKEN,
    Cluster,
    Topology,
    make_token,
    run_cluster,
    run_topology,
)
from cirno.harness.raw_client import RawClient

__all__ = [
    "ADMIN_TOKEN",
    "Cluster",
    "RawClient",
    "Topology",
    "free_port",
    "make_token",
    "run_cluster",
    "run_topology",
]
