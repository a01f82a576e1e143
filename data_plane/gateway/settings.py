"""Gateway settings, read from the environment (flags of ``cirno gateway`` override)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from data_plane.cluster.protocol import LOCATION_REFRESH_INTERVAL
from data_plane.wire import DEFAULT_MAX_PACKET_SIZE


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def parse_addresses(raw: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` → ``[(host, port), …]``."""
    out: list[tuple[str, int]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"not a host:port address: {item!r}")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


@dataclass(frozen=True)
class GatewaySettings:
    """Everything a gateway process needs; times are seconds."""

    cluster_secret: str
    control_url: str = "http://127.0.0.1:8080"
    gateway_id: str = field(default_factory=lambda: f"gw-{socket.gethostname()}-{os.getpid()}")
    ws_host: str = "127.0.0.1"
    ws_port: int = 8000
    tcp_host: str = "127.0.0.1"
    tcp_port: int = 8001
    logic_addrs: tuple[tuple[str, int], ...] = ()
    """Static logic nodes; empty means: discover them in the control plane's registry."""
    zone: str = "default"
    region: str = "default"
    pool: str = ""
    version: str = "0.1.0"
    public_ws_url: str = ""
    public_tcp_addr: str = ""
    capacity: int = 10_000
    heartbeat_interval: float = 5.0
    registry_poll_interval: float = 2.0
    login_timeout: float = 10.0
    idle_timeout: float = 180.0
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    max_send_buffer: int = 4 * 1024 * 1024
    login_max_packet_size: int = 8 * 1024
    """Before a login succeeds: the largest packet accepted (a login is a few hundred
    bytes) ..."""
    login_send_buffer: int = 16 * 1024
    """... and the send bound, so an unauthenticated peer costs next to nothing."""
    commands_per_second: float = 20.0
    """Per connection, every command, bursts of 2 seconds' worth (a tenant's
    ``commands_per_second`` overrides)."""
    account_commands_per_second: float = 40.0
    """Per account on this gateway, every command, bursts of 2 seconds' worth (tenant
    override: ``account_commands_per_second``)."""
    logins_per_ip_per_second: float = 20.0
    """Login attempts per client IP on this gateway (bursts of 5 seconds' worth)."""
    tenant_logins_per_second: float = 200.0
    """Verified logins per tenant on this gateway (tenant override:
    ``logins_per_second``; bursts of 5 seconds' worth)."""
    max_in_flight: int = 64
    """Requests of one connection forwarded and not answered yet; past it the gateway
    stops reading that connection until answers come back."""
    tenant_refresh_interval: float = 1.0
    """Also the bound on revocations: a disabled tenant, a ban or a revoked key closes
    the connections it affects at the next refresh (:mod:`.revocation`)."""
    logic_request_timeout: float = 10.0
    location_refresh_interval: float = LOCATION_REFRESH_INTERVAL
    metrics_port: int | None = None
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, beside other gateways on the same ports (``cirno up
    --workers``; ``CIRNO_GATEWAY_REUSE_PORT=1``)."""

    @classmethod
    def from_env(cls) -> GatewaySettings:
        """Read ``CIRNO_*`` variables; ``CIRNO_CLUSTER_SECRET`` is required."""
        secret = os.environ.get("CIRNO_CLUSTER_SECRET", "")
        if not secret:
            raise ValueError("CIRNO_CLUSTER_SECRET must be set")
        defaults = cls(cluster_secret=secret)
        logic = os.environ.get("CIRNO_LOGIC_ADDRS")
        return cls(
            cluster_secret=secret,
            control_url=os.environ.get("CIRNO_CONTROL_URL", defaults.control_url),
            gateway_id=os.environ.get("CIRNO_GATEWAY_ID") or defaults.gateway_id,
            ws_host=os.environ.get("CIRNO_GATEWAY_WS_HOST", defaults.ws_host),
            ws_port=_env_int("CIRNO_GATEWAY_WS_PORT", defaults.ws_port),
            tcp_host=os.environ.get("CIRNO_GATEWAY_TCP_HOST", defaults.tcp_host),
            tcp_port=_env_int("CIRNO_GATEWAY_TCP_PORT", defaults.tcp_port),
            logic_addrs=tuple(parse_addresses(logic)) if logic else defaults.logic_addrs,
            zone=os.environ.get("CIRNO_ZONE") or defaults.zone,
            region=os.environ.get("CIRNO_REGION") or defaults.region,
            pool=os.environ.get("CIRNO_GATEWAY_POOL", defaults.pool),
            version=os.environ.get("CIRNO_VERSION") or defaults.version,
            public_ws_url=os.environ.get("CIRNO_GATEWAY_PUBLIC_WS_URL", ""),
            public_tcp_addr=os.environ.get("CIRNO_GATEWAY_PUBLIC_TCP_ADDR", ""),
            capacity=_env_int("CIRNO_GATEWAY_CAPACITY", defaults.capacity),
            heartbeat_interval=_env_float("CIRNO_HEARTBEAT_INTERVAL", defaults.heartbeat_interval),
            registry_poll_interval=_env_float(
                "CIRNO_REGISTRY_POLL_INTERVAL", defaults.registry_poll_interval
            ),
            login_timeout=_env_float("CIRNO_LOGIN_TIMEOUT", defaults.login_timeout),
            idle_timeout=_env_float("CIRNO_IDLE_TIMEOUT", defaults.idle_timeout),
            max_packet_size=_env_int("CIRNO_MAX_PACKET_SIZE", defaults.max_packet_size),
            max_send_buffer=_env_int("CIRNO_MAX_SEND_BUFFER", defaults.max_send_buffer),
            login_max_packet_size=_env_int(
                "CIRNO_LOGIN_MAX_PACKET_SIZE", defaults.login_max_packet_size
            ),
            login_send_buffer=_env_int("CIRNO_LOGIN_SEND_BUFFER", defaults.login_send_buffer),
            commands_per_second=_env_float(
                "CIRNO_COMMANDS_PER_SECOND", defaults.commands_per_second
            ),
            account_commands_per_second=_env_float(
                "CIRNO_ACCOUNT_COMMANDS_PER_SECOND", defaults.account_commands_per_second
            ),
            logins_per_ip_per_second=_env_float(
                "CIRNO_LOGINS_PER_IP_PER_SECOND", defaults.logins_per_ip_per_second
            ),
            tenant_logins_per_second=_env_float(
                "CIRNO_TENANT_LOGINS_PER_SECOND", defaults.tenant_logins_per_second
            ),
            max_in_flight=_env_int("CIRNO_MAX_IN_FLIGHT", defaults.max_in_flight),
            metrics_port=_env_int("CIRNO_GATEWAY_METRICS_PORT", 0) or None,
            reuse_port=os.environ.get("CIRNO_GATEWAY_REUSE_PORT", "") in ("1", "true", "yes"),
            location_refresh_interval=_env_float(
                "CIRNO_LOCATION_REFRESH_INTERVAL", defaults.location_refresh_interval
            ),
            tenant_refresh_interval=_env_float(
                "CIRNO_TENANT_REFRESH_INTERVAL", defaults.tenant_refresh_interval
            ),
        )
