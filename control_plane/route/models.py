"""The answer of ``GET /v1/route``: where an SDK should connect, and how to behave."""

from __future__ import annotations

from typing import Literal

from sqlmodel import Field, SQLModel

HEARTBEAT_INTERVAL_S = 55
"""kim clients ping every 55 s (docs/protocol.md)."""


class RouteGateway(SQLModel):
    """A gateway to connect to (best first)."""

    id: str
    ws_url: str | None
    tcp_addr: str | None
    zone: str


class Reconnect(SQLModel):
    """Exponential back-off with jitter for reconnects."""

    initial_ms: int = 500
    max_ms: int = 30_000
    multiplier: float = 2.0
    jitter: float = Field(default=0.2, description="± fraction of each delay.")


class RouteAnswer(SQLModel):
    """Where to connect: up to three gateways, ordered by preference."""

    country: str | None = Field(description="ISO-3166 alpha-2 of the client, if known.")
    continent: str | None
    region: str | None = Field(description="The region the client maps to.")
    geo: Literal["db", "none", "admin"] = Field(
        description="`db`: located by the GeoIP database; `none`: no database or unknown "
        "address (default region); `admin`: the address came from `?ip=`."
    )
    pool: str | None = Field(description="The gateway pool served (`stable` = default).")
    rule: str | None = Field(
        default=None,
        description="The id of the grayscale rule that chose the wanted gateway pool "
        "(null when no rule matched: the default pool was wanted).",
    )
    fallback: bool = Field(
        description="True when the wanted pool or region had no live gateway and others "
        "were chosen instead."
    )
    fallback_reason: str | None = Field(
        default=None,
        description="Why it fell back, e.g. `no live gateway in pool canary` (null when "
        "the wanted pool and region served).",
    )
    gateways: list[RouteGateway]
    heartbeat_interval_s: int = HEARTBEAT_INTERVAL_S
    reconnect: Reconnect = Field(default_factory=Reconnect)
