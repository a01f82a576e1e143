"""Control-plane settings, read once from the environment.

Environment variables:

- ``CIRNO_DATABASE_URL``: plain database URL (``sqlite:///…`` or ``mysql://…``);
  default ``sqlite:///{CIRNO_DATA_DIR}/control.db``.
- ``CIRNO_DATA_DIR``: where embedded files live; default ``./data``.
- ``CIRNO_ADMIN_TOKEN``: bearer token of the REST admin API (required).
- ``CIRNO_CLUSTER_SECRET``: shared secret of gateways and logic nodes (required).
- ``CIRNO_CONTROL_HOST`` / ``CIRNO_CONTROL_PORT``: listen address; default
  ``127.0.0.1:8080``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from control_plane.errors import ConfigurationError

DATABASE_URL_ENV = "CIRNO_DATABASE_URL"
DATA_DIR_ENV = "CIRNO_DATA_DIR"
ADMIN_TOKEN_ENV = "CIRNO_ADMIN_TOKEN"
CLUSTER_SECRET_ENV = "CIRNO_CLUSTER_SECRET"
HOST_ENV = "CIRNO_CONTROL_HOST"
PORT_ENV = "CIRNO_CONTROL_PORT"

DEFAULT_DATA_DIR = "./data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True, slots=True)
class ControlPlaneSettings:
    """Everything the control-plane process needs; secrets are kept out of ``repr``."""

    database_url: str
    admin_token: str = field(repr=False)
    cluster_secret: str = field(repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ControlPlaneSettings:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises :class:`ConfigurationError` naming the variable when a required secret is
        missing or empty, or when the port is not a valid TCP port.
        """
        env = os.environ if environ is None else environ
        return cls(
            database_url=database_url_from_env(env),
            admin_token=_required(env, ADMIN_TOKEN_ENV),
            cluster_secret=_required(env, CLUSTER_SECRET_ENV),
            host=env.get(HOST_ENV) or DEFAULT_HOST,
            port=_port(env.get(PORT_ENV)),
        )


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``CIRNO_DATABASE_URL``, else the SQLite file ``control.db`` in ``CIRNO_DATA_DIR``."""
    env = os.environ if environ is None else environ
    data_dir = env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return env.get(DATABASE_URL_ENV) or f"sqlite:///{data_dir}/control.db"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigurationError(
            f"{name} is not set: the control plane needs it (`cirno` generates one)"
        )
    return value


def _port(raw: str | None) -> int:
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{PORT_ENV} must be an integer, got {raw!r}") from exc
    if not 0 < port < 65536:
        raise ConfigurationError(f"{PORT_ENV} must be in 1..65535, got {port}")
    return port
