"""The ``cirno`` command: run one role, the all-in-one (``cirno up``), or a chat.

``cirno up`` (``cirno/up.py``) starts the control plane, one logic node and one gateway
as separate processes on the embedded default. Each role can also run alone
(``cirno control|logic|gateway``), configured by ``CIRNO_*`` variables or the flags that
set them (``cirno/options.py``). A user's mistake (a bad flag, a missing variable, a
busy port) ends in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cirno.logformat import FORMATS, log_format
from cirno.options import add_role_arguments, apply_role_arguments, described
from cirno.runtime import run_until_signalled, setup_logging

ROLES = ("control", "logic", "gateway")
USAGE_ERROR = 2

DESCRIPTION = """\
cirno-im: a distributed instant-messaging backend.

  cirno up                      control plane + logic node + gateway on this machine
  cirno chat --tenant T --account A --secret S
                                chat in the terminal
  cirno control|logic|gateway   run one role (configured by CIRNO_* variables)
  cirno cluster                 Redis Cluster + MySQL, 3 logic nodes, 2 gateways
  cirno verify                  integrity check through the SDK

Every flag's default and variable is in the subcommand's --help; all variables are
listed in docs/operations.md."""

ROLE_HELP = {
    "control": "the control plane: tenants, registry, routing (REST)",
    "logic": "a logic node: login, chat and groups, behind the gateways",
    "gateway": "a gateway: client WebSocket and TCP connections",
}


class ConfigError(Exception):
    """A role's configuration is missing or malformed (reported as one line)."""


def _run_control() -> None:
    from control_plane.server import run
    from control_plane.settings import ControlPlaneSettings

    try:
        settings = ControlPlaneSettings.from_env()
    except ValueError as exc:  # ConfigurationError is a ValueError
        raise ConfigError(str(exc)) from exc
    setup_logging("control")
    run(settings)


def _run_logic() -> None:
    from control_plane.migrate import upgrade
    from data_plane.logic.main import serve
    from data_plane.logic.settings import LogicSettings

    try:
        settings = LogicSettings.from_env()
        settings.check()
    except ValueError as exc:  # UnknownService is a ValueError too
        raise ConfigError(str(exc)) from exc
    setup_logging("logic")
    if settings.database_url.startswith("sqlite:"):
        upgrade(settings.database_url)
    run_until_signalled(lambda: serve(settings))


def _run_gateway() -> None:
    from data_plane.gateway.main import serve
    from data_plane.gateway.settings import GatewaySettings

    try:
        settings = GatewaySettings.from_env()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    setup_logging("gateway")
    run_until_signalled(lambda: serve(settings))


def _add_up_arguments(parser: argparse.ArgumentParser) -> None:
    def flag(name: str, env: str, default: str | int, text: str, kind: type = str) -> None:
        # A string default goes through ``kind`` like a typed value: a malformed
        # variable is reported by argparse as one line, and only for ``cirno up``.
        value = os.environ.get(env) or default
        parser.add_argument(name, type=kind, default=value, help=described(text, default, env))

    flag("--data-dir", "CIRNO_DATA_DIR", "data", "SQLite files of the embedded default")
    flag("--host", "CIRNO_HOST", "127.0.0.1", "listen address of every process")
    flag("--control-port", "CIRNO_CONTROL_PORT", 8080, "control plane REST port", int)
    flag("--ws-port", "CIRNO_GATEWAY_WS_PORT", 8000, "gateway WebSocket port", int)
    flag("--tcp-port", "CIRNO_GATEWAY_TCP_PORT", 8001, "gateway TCP port", int)
    flag("--logic-port", "CIRNO_LOGIC_PORT", 8100, "logic node port (gateway links)", int)
    flag("--gateway-metrics-port", "CIRNO_GATEWAY_METRICS_PORT", 9100, "gateway /metrics", int)
    flag("--logic-metrics-port", "CIRNO_LOGIC_METRICS_PORT", 9101, "logic node /metrics", int)
    flag(
        "--workers",
        "CIRNO_WORKERS",
        1,
        "logic nodes and gateways to run (the gateways share the client ports with "
        "SO_REUSEPORT; worker i uses the logic port + i and each metrics port + 2i); "
        "more than 1 needs CIRNO_SESSION_URL=redis://...",
        int,
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get("CIRNO_LOG_FORMAT") or "text",
        help=described("the processes' log lines: text, or json", "text", "CIRNO_LOG_FORMAT"),
    )
    parser.epilog = (
        "CIRNO_ADMIN_TOKEN is the admin bearer token (generated and printed when unset); "
        "CIRNO_CLUSTER_SECRET is generated when unset."
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cirno``."""
    parser = argparse.ArgumentParser(
        prog="cirno", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_up_arguments(
        sub.add_parser(
            "up",
            help="run the all-in-one on the embedded default",
            description="Run the control plane, a logic node and a gateway (SQLite files, "
            "in-memory sessions). Ctrl-C or SIGTERM stops them, gateway first.",
        )
    )
    for role in ROLES:
        add_role_arguments(
            sub.add_parser(role, help=ROLE_HELP[role], description=f"Run {ROLE_HELP[role]}."),
            role,
        )
    from cirno import chat, cluster, verify_cli

    chat.add_arguments(
        sub.add_parser(
            "chat",
            help="chat in the terminal: @account text, #group text, /quit",
            description=chat.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    defaults = argparse.ArgumentDefaultsHelpFormatter
    verify_cli.add_arguments(
        sub.add_parser(
            "verify",
            help="integrity check: traffic through the SDK, then count",
            formatter_class=defaults,
        )
    )
    cluster.add_arguments(
        sub.add_parser(
            "cluster",
            help="Redis Cluster + MySQL, 3 logic nodes, 2 gateways",
            description="MySQL comes from CIRNO_MYSQL_URL (default "
            "mysql://root@127.0.0.1:3306/cirno); see docs/operations.md.",
            formatter_class=defaults,
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cirno`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from cirno.up import up

        return up(args)
    if args.command == "chat":
        from cirno.chat import main as chat_main

        return chat_main(args)
    if args.command == "verify":
        from cirno.verify_cli import main as verify_main

        return verify_main(args)
    if args.command == "cluster":
        from cirno.cluster import main as cluster_main

        return cluster_main(args)
    return _run_role(args.command, args)


def _run_role(role: str, args: argparse.Namespace) -> int:
    missing = apply_role_arguments(args, role)
    if missing:
        print(
            f"cirno {role}: set {', '.join(missing)} in the environment (see cirno {role} --help)",
            file=sys.stderr,
        )
        return USAGE_ERROR
    try:
        try:
            log_format()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        {"control": _run_control, "logic": _run_logic, "gateway": _run_gateway}[role]()
    except ConfigError as exc:
        print(f"cirno {role}: {exc} (see cirno {role} --help)", file=sys.stderr)
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
