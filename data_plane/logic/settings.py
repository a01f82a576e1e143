"""Logic node settings, read from the environment (flags of ``cirno logic`` override)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from data_plane.cluster.services import ALL_SERVICES, Service, format_services, parse_services
from data_plane.logic.handlers.login_gate import DEFAULT_LIMIT, DEFAULT_PATIENCE
from data_plane.logic.moderation.hook import DEFAULT_CONCURRENCY, DEFAULT_MAX_ANSWER_BYTES
from data_plane.wire import DEFAULT_MAX_PACKET_SIZE

DEFAULT_RECALL_WINDOW_S = 120.0
"""How long after sending a message its sender may recall it, unless configured."""


@dataclass(frozen=True)
class LogicSettings:
    """Everything a logic node needs.

    ``session_url`` is ``memory://`` (the embedded default: one logic node only),
    ``redis://…`` or ``redis+cluster://…``; ``database_url`` is the message store
    (``sqlite:///…`` or ``mysql://…``).
    """

    cluster_secret: str
    node_id: str = field(default_factory=lambda: f"logic-{socket.gethostname()}-{os.getpid()}")
    host: str = "127.0.0.1"
    port: int = 8100
    session_url: str = "memory://"
    session_prefix: str = "cirno"
    database_url: str = "sqlite:///data/messages.db"
    id_node: int | None = None
    """Message-id node number; None (the default) leases one from the registry."""
    zone: str = "default"
    region: str = "default"
    advertise: str = ""
    """The ``host:port`` gateways dial (default: host:port)."""
    heartbeat_interval: float = 5.0
    control_url: str = "http://127.0.0.1:8080"
    tenant_refresh_interval: float = 1.0
    metrics_port: int | None = None
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    services: frozenset[Service] = ALL_SERVICES
    """The services this node runs (:mod:`data_plane.cluster.services`); all by default."""
    recall_window_s: float = DEFAULT_RECALL_WINDOW_S
    """How long after sending a message its sender may recall it (``chat.recall``);
    every logic node of a cluster should use the same value."""
    moderation_concurrency: int = DEFAULT_CONCURRENCY
    """Moderation hook calls this node makes at once, all tenants together; a send
    waiting for a slot spends its hook's deadline waiting."""
    moderation_max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    """The largest moderation hook answer read; a longer one counts as a failed call."""
    max_in_flight_per_link: int = 1024
    """Requests of one gateway link running at once (0 = unlimited); past it the node
    stops reading that link until some end."""
    max_logins_running: int = DEFAULT_LIMIT
    """Sign-ins and sign-outs running at once (0 = unlimited); the others wait in line
    (:mod:`data_plane.logic.handlers.login_gate`). Keep it below the session store's
    ``max_connections`` (100 by default)."""
    login_patience: float = DEFAULT_PATIENCE
    """Seconds a sign-in may wait in that line before it is answered Unavailable (503);
    below the gateways' ``logic_request_timeout``."""

    def check(self) -> None:
        """Raise ValueError when the settings cannot work together.

        A node running only some services is one of several nodes, and they all must
        see the same locations (a chat node pushes to logins another node recorded): the
        in-memory session store, private to one process, cannot do that.
        """
        if self.services != ALL_SERVICES and self.session_url.startswith("memory:"):
            raise ValueError(
                f"running only {format_services(self.services)} needs a "
                "session store shared with the other logic nodes (CIRNO_SESSION_URL=redis://…)"
            )

    @classmethod
    def from_env(cls) -> LogicSettings:
        """Read ``CIRNO_*`` variables; ``CIRNO_CLUSTER_SECRET`` is required."""
        secret = os.environ.get("CIRNO_CLUSTER_SECRET", "")
        if not secret:
            raise ValueError("CIRNO_CLUSTER_SECRET must be set")
        d = cls(cluster_secret=secret)
        data_dir = os.environ.get("CIRNO_DATA_DIR", "data")
        return cls(
            cluster_secret=secret,
            node_id=os.environ.get("CIRNO_LOGIC_ID") or d.node_id,
            host=os.environ.get("CIRNO_LOGIC_HOST", d.host),
            port=int(os.environ.get("CIRNO_LOGIC_PORT") or d.port),
            session_url=os.environ.get("CIRNO_SESSION_URL") or d.session_url,
            session_prefix=os.environ.get("CIRNO_SESSION_PREFIX") or d.session_prefix,
            database_url=os.environ.get("CIRNO_MESSAGE_DATABASE_URL")
            or f"sqlite:///{data_dir}/messages.db",
            id_node=int(os.environ["CIRNO_ID_NODE"]) if os.environ.get("CIRNO_ID_NODE") else None,
            zone=os.environ.get("CIRNO_ZONE") or d.zone,
            region=os.environ.get("CIRNO_REGION") or d.region,
            advertise=os.environ.get("CIRNO_LOGIC_ADVERTISE", ""),
            heartbeat_interval=float(
                os.environ.get("CIRNO_HEARTBEAT_INTERVAL") or d.heartbeat_interval
            ),
            control_url=os.environ.get("CIRNO_CONTROL_URL") or d.control_url,
            metrics_port=int(os.environ.get("CIRNO_LOGIC_METRICS_PORT") or 0) or None,
            tenant_refresh_interval=float(
                os.environ.get("CIRNO_TENANT_REFRESH_INTERVAL") or d.tenant_refresh_interval
            ),
            max_packet_size=int(os.environ.get("CIRNO_MAX_PACKET_SIZE") or d.max_packet_size),
            services=parse_services(os.environ.get("CIRNO_LOGIC_SERVICES", "")),
            recall_window_s=float(
                os.environ.get("CIRNO_RECALL_WINDOW_SECONDS") or d.recall_window_s
            ),
            moderation_concurrency=int(
                os.environ.get("CIRNO_MODERATION_CONCURRENCY") or d.moderation_concurrency
            ),
            moderation_max_answer_bytes=int(
                os.environ.get("CIRNO_MODERATION_MAX_ANSWER_BYTES") or d.moderation_max_answer_bytes
            ),
            max_in_flight_per_link=int(
                os.environ.get("CIRNO_LOGIC_MAX_IN_FLIGHT") or d.max_in_flight_per_link
            ),
            max_logins_running=int(
                os.environ.get("CIRNO_LOGIC_MAX_LOGINS") or d.max_logins_running
            ),
            login_patience=float(os.environ.get("CIRNO_LOGIN_PATIENCE") or d.login_patience),
        )
