"""Control-plane settings, read once from the environment.

Environment variables:

- ``CIRNO_DATABASE_URL``: plain database URL (``sqlite:///…`` or ``mysql://…``);
  default ``sqlite:///{CIRNO_DATA_DIR}/control.db``.
- ``CIRNO_DATA_DIR``: where embedded files live; default ``./data``.
- ``CIRNO_ADMIN_TOKEN``: bearer token of the REST admin API (required).
- ``CIRNO_CLUSTER_SECRET``: shared secret of gateways and logic nodes (required).
- ``CIRNO_CONTROL_HOST`` / ``CIRNO_CONTROL_PORT``: listen address; default
  ``127.0.0.1:8080``.
- ``CIRNO_NODE_TTL``: seconds a node stays live after its last heartbeat; default 15.
- ``CIRNO_ID_LEASE_TTL``: seconds a logic node's message-id number stays leased after
  its last heartbeat; default 3600 (at least twice the node TTL). A logic node stops
  creating messages when its lease lapses, so this is how long the data plane keeps
  accepting messages while the control plane is down; a dead node's number is reused
  only after it.
- ``CIRNO_GEOIP_DB``: a MaxMind-format (``.mmdb``) City or Country database; unset,
  the first one found in ``$CIRNO_DATA_DIR/geoip/`` or in an installed data package
  (``control_plane/geoip_data.py``); ``none`` turns GeoIP off. Without a database every
  client is routed to the default region.
- ``CIRNO_TRUSTED_PROXIES``: comma-separated CIDRs (or addresses) of reverse proxies
  whose ``X-Forwarded-For`` is believed; default none.

Limits (always on; each must be positive, see ``control_plane.limits`` and
``control_plane.http_protocol``):

- ``CIRNO_CONTROL_MAX_BODY``: largest request body in bytes; default 1048576 (1 MiB).
- ``CIRNO_CONTROL_HEADER_TIMEOUT``: seconds a request line and headers may take to
  arrive (from the connection or from the request's first byte); default 10.
- ``CIRNO_CONTROL_BODY_TIMEOUT``: seconds a whole request body may take to arrive once
  its headers are in; default 30.
- ``CIRNO_CONTROL_MAX_HEADER_BYTES``: largest request line plus headers; default 65536.
- ``CIRNO_CONTROL_MAX_CONNECTIONS``: open connections served at once; a request on any
  connection beyond them is answered 503 and its connection closed; default 1000.
- ``CIRNO_SERVER_API_TIMEOUT``: seconds a server-API call waits for the logic node's
  answer (dial and handshake included) before answering 503; default 5.
- ``CIRNO_SERVER_API_MAX_IN_FLIGHT``: server-API calls one control-plane process has
  in flight to logic nodes at once; beyond them a call is answered 503 at once;
  default 64.

Time is read through ``settings.clock`` (seconds since the epoch, ``time.time`` by
default) so that tests advance a fake clock instead of sleeping.
"""

from __future__ import annotations

import ipaddress
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from control_plane.errors import ConfigurationError
from control_plane.geoip_data import geoip_db

DATABASE_URL_ENV = "CIRNO_DATABASE_URL"
DATA_DIR_ENV = "CIRNO_DATA_DIR"
ADMIN_TOKEN_ENV = "CIRNO_ADMIN_TOKEN"
CLUSTER_SECRET_ENV = "CIRNO_CLUSTER_SECRET"
HOST_ENV = "CIRNO_CONTROL_HOST"
PORT_ENV = "CIRNO_CONTROL_PORT"
NODE_TTL_ENV = "CIRNO_NODE_TTL"
ID_LEASE_TTL_ENV = "CIRNO_ID_LEASE_TTL"
GEOIP_DB_ENV = "CIRNO_GEOIP_DB"
TRUSTED_PROXIES_ENV = "CIRNO_TRUSTED_PROXIES"
MAX_BODY_ENV = "CIRNO_CONTROL_MAX_BODY"
HEADER_TIMEOUT_ENV = "CIRNO_CONTROL_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "CIRNO_CONTROL_BODY_TIMEOUT"
MAX_HEADER_BYTES_ENV = "CIRNO_CONTROL_MAX_HEADER_BYTES"
MAX_CONNECTIONS_ENV = "CIRNO_CONTROL_MAX_CONNECTIONS"
MAX_BANS_ENV = "CIRNO_MAX_BANS_PER_TENANT"
SERVER_API_TIMEOUT_ENV = "CIRNO_SERVER_API_TIMEOUT"
SERVER_API_MAX_IN_FLIGHT_ENV = "CIRNO_SERVER_API_MAX_IN_FLIGHT"

DEFAULT_DATA_DIR = "./data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_NODE_TTL = 15.0
DEFAULT_ID_LEASE_TTL = 3600.0
DEFAULT_CACHE_TTL = 1.0
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_BANS = 10_000
DEFAULT_SERVER_API_TIMEOUT = 5.0
DEFAULT_SERVER_API_MAX_IN_FLIGHT = 64
ID_NODE_COUNT = 1024
"""Node ids for message ids are 10 bits (``data_plane.storage.ids.NODE_BITS``)."""

Clock = Callable[[], float]
"""Seconds since the unix epoch."""
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ControlPlaneSettings:
    """Everything the control-plane process needs; secrets are kept out of ``repr``."""

    database_url: str
    admin_token: str = field(repr=False)
    cluster_secret: str = field(repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    node_ttl: float = DEFAULT_NODE_TTL
    geoip_db: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    cache_ttl: float = DEFAULT_CACHE_TTL
    """How long ``/v1/route`` serves its in-memory snapshot before reloading it."""
    id_lease_ttl: float = DEFAULT_ID_LEASE_TTL
    id_node_count: int = ID_NODE_COUNT
    """Node ids ``0 .. id_node_count - 1`` are leased (tests shrink the range)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    message_database_url: str | None = field(default=None, repr=False)
    """The shared message database (``CIRNO_MESSAGE_DATABASE_URL``), where webhook
    deliveries and push tokens live; None: the control plane's own (embedded)."""
    max_bans_per_tenant: int = DEFAULT_MAX_BANS
    """Live account bans a tenant may have (each is sent to every gateway)."""
    server_api_timeout: float = DEFAULT_SERVER_API_TIMEOUT
    """Seconds a server-API call waits for a logic node (``control_plane.logic_client``)."""
    server_api_max_in_flight: int = DEFAULT_SERVER_API_MAX_IN_FLIGHT
    """Server-API calls in flight to logic nodes at once, per process."""
    clock: Clock = field(default=time.time, repr=False, compare=False)

    @property
    def lease_ttl(self) -> float:
        """How long a node-id lease lasts after a heartbeat: ``id_lease_ttl``, and never
        less than twice the node TTL."""
        return max(self.id_lease_ttl, 2 * self.node_ttl)

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
            node_ttl=_node_ttl(env.get(NODE_TTL_ENV)),
            id_lease_ttl=_positive(
                ID_LEASE_TTL_ENV, env.get(ID_LEASE_TTL_ENV), DEFAULT_ID_LEASE_TTL
            ),
            geoip_db=geoip_db(env.get(GEOIP_DB_ENV), env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR),
            trusted_proxies=parse_networks(env.get(TRUSTED_PROXIES_ENV, "")),
            max_body_bytes=_count(MAX_BODY_ENV, env.get(MAX_BODY_ENV), DEFAULT_MAX_BODY_BYTES),
            header_timeout=_positive(
                HEADER_TIMEOUT_ENV, env.get(HEADER_TIMEOUT_ENV), DEFAULT_HEADER_TIMEOUT
            ),
            body_timeout=_positive(
                BODY_TIMEOUT_ENV, env.get(BODY_TIMEOUT_ENV), DEFAULT_BODY_TIMEOUT
            ),
            max_header_bytes=_count(
                MAX_HEADER_BYTES_ENV, env.get(MAX_HEADER_BYTES_ENV), DEFAULT_MAX_HEADER_BYTES
            ),
            max_connections=_count(
                MAX_CONNECTIONS_ENV, env.get(MAX_CONNECTIONS_ENV), DEFAULT_MAX_CONNECTIONS
            ),
            message_database_url=env.get("CIRNO_MESSAGE_DATABASE_URL") or None,
            max_bans_per_tenant=_count(MAX_BANS_ENV, env.get(MAX_BANS_ENV), DEFAULT_MAX_BANS),
            server_api_timeout=_positive(
                SERVER_API_TIMEOUT_ENV,
                env.get(SERVER_API_TIMEOUT_ENV),
                DEFAULT_SERVER_API_TIMEOUT,
            ),
            server_api_max_in_flight=_count(
                SERVER_API_MAX_IN_FLIGHT_ENV,
                env.get(SERVER_API_MAX_IN_FLIGHT_ENV),
                DEFAULT_SERVER_API_MAX_IN_FLIGHT,
            ),
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


def _positive(name: str, raw: str | None, default: float) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {raw!r}")
    return value


def _count(name: str, raw: str | None, default: int) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer, got {raw!r}")
    return value


def _node_ttl(raw: str | None) -> float:
    return _positive(NODE_TTL_ENV, raw, DEFAULT_NODE_TTL)


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, ::1"`` → networks; a plain address is a one-address network."""
    networks: list[Network] = []
    for item in raw.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ConfigurationError(
                f"{TRUSTED_PROXIES_ENV}: {text!r} is not a CIDR or an IP address"
            ) from exc
    return tuple(networks)
