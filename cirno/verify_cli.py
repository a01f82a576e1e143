"""The ``cirno verify`` command: arguments, an optional cluster of its own, the report.

Without ``--faults`` it drives traffic through the gateways given with ``--url`` (or
``--route``). With ``--faults`` it starts the ``cirno cluster`` topology itself
(:class:`~cirno.verify_faults.ManagedCluster`, under ``--data-dir``, MySQL from
``CIRNO_MYSQL_URL``), creates the tenant, and injects the faults one after another
during the traffic, so that it can kill, cut and restart what it owns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from cirno.verify import RECEIVER_KINDS, FaultStep, IntegrityConfig, run_integrity
from cirno.verify_check import IntegrityReport
from cirno.verify_faults import FAULTS, Fault, ManagedCluster, parse_faults
from cirno_sdk import CirnoError

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/cirno_verify"
MANAGED_TENANT = "verify"
MANAGED_SECRET = "verify-tenant-secret-0123456789-abcdefgh"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cirno verify``."""
    parser.add_argument(
        "--url",
        action="append",
        dest="urls",
        metavar="URL",
        help="a gateway (ws://host:port/ or tcp://host:port); repeat for several; "
        "none: ws://127.0.0.1:8000/ unless --route",
    )
    parser.add_argument("--route", metavar="CONTROL_URL", help="ask GET /v1/route instead")
    parser.add_argument("--tenant", help="required unless --faults (which makes its own)")
    parser.add_argument("--secret", help="the tenant's secret (mints tokens)")
    parser.add_argument("--users", type=int, default=20, help="sender/receiver pairs")
    parser.add_argument("--groups", type=int, default=2, help="groups the users talk in")
    parser.add_argument(
        "--duration", type=float, help="seconds of traffic; none: 10, or until --messages"
    )
    parser.add_argument("--messages", type=int, help="stop after this many sends in total")
    parser.add_argument("--rate", type=float, default=2.0, help="messages/s per user")
    parser.add_argument(
        "--group-share", type=float, default=0.25, help="share of sends that go to a group"
    )
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds before the final sync")
    parser.add_argument("--seed", type=int, help="random seed; none: a fresh one")
    parser.add_argument(
        "--receivers",
        choices=RECEIVER_KINDS,
        default="sdk",
        help="SDK receivers, kim-style receivers (ack newest, sync after the ack, no gap "
        "filling), or both",
    )
    parser.add_argument(
        "--kim-ack-interval", type=float, default=3.0, help="seconds between kim-style acks"
    )
    parser.add_argument(
        "--faults",
        help=f"'all' or a comma-separated list of {', '.join(FAULTS)}; starts a cluster of its own",
    )
    parser.add_argument(
        "--fault-down", type=float, help="seconds each fault lasts; none: each fault's own"
    )
    parser.add_argument("--fault-gap", type=float, default=5.0, help="seconds between faults")
    parser.add_argument(
        "--data-dir", default="data/verify", help="the own cluster's data (with --faults)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``cirno verify``: 0 when nothing was lost, duplicated or out of order."""
    try:
        faults = parse_faults(args.faults) if args.faults else []
        managed = bool(args.faults)
        if not managed and not (args.tenant and args.secret):
            raise ValueError("--tenant and --secret are required (unless --faults)")
        config = IntegrityConfig(
            gateway_urls=tuple(args.urls or ([] if args.route else ["ws://127.0.0.1:8000/"])),
            tenant=args.tenant or f"{MANAGED_TENANT}{secrets.token_hex(3)}",
            secret=args.secret or MANAGED_SECRET,
            users=args.users,
            groups=args.groups,
            duration=args.duration,
            messages=args.messages,
            rate=args.rate,
            group_share=args.group_share,
            quiet=args.quiet,
            seed=args.seed,
            control_url=None if managed else args.route,
            receivers=args.receivers,
            kim_ack_interval=args.kim_ack_interval,
            fault_gap=args.fault_gap,
        )
    except ValueError as exc:
        print(f"cirno verify: {exc}", file=sys.stderr)
        return 2
    try:
        if managed:
            mysql_url = os.environ.get("CIRNO_MYSQL_URL") or DEFAULT_MYSQL_URL
            cluster = ManagedCluster(Path(args.data_dir).resolve(), mysql_url)
            names = [fault.name for fault in faults]
            report = run_with_faults(cluster, config, names, args.fault_down)
        else:
            report = asyncio.run(run_integrity(config))
    except CirnoError as exc:
        print(f"cirno verify: could not start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(report.render(), flush=True)
    return 0 if report.ok else 1


def run_with_faults(
    cluster: ManagedCluster,
    config: IntegrityConfig,
    faults: list[str],
    down: float | None = None,
) -> IntegrityReport:
    """Start ``cluster``, create ``config``'s tenant, run :func:`run_on_cluster`, stop
    the cluster; the report."""
    cluster.start()
    try:
        cluster.create_tenant(config.tenant, config.secret)
        return asyncio.run(run_on_cluster(cluster, config, faults, down))
    finally:
        cluster.stop()


async def run_on_cluster(
    cluster: ManagedCluster,
    config: IntegrityConfig,
    faults: list[str],
    down: float | None = None,
) -> IntegrityReport:
    """``config``'s traffic against the running ``cluster`` (its gateways replace
    ``config``'s URLs) with ``faults`` (names of :data:`~cirno.verify_faults.FAULTS`,
    each lasting ``down`` seconds or its default), its supervisor watching meanwhile."""
    steps = [_step(cluster, FAULTS[name], down) for name in faults]
    config = replace(config, gateway_urls=tuple(cluster.ws_urls), control_url=None)
    async with asyncio.TaskGroup() as tg:
        watcher = tg.create_task(cluster.watch())
        try:
            return await run_integrity(config, faults=steps)
        finally:
            watcher.cancel()


def _step(cluster: ManagedCluster, fault: Fault, down: float | None) -> FaultStep:
    seconds = fault.down if down is None else down

    async def inject() -> dict[str, object]:
        return await fault.run(cluster, seconds)

    return fault.name, inject
