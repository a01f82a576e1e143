"""Bodies of the console's admin endpoints (``/v1/console/…``)."""

from __future__ import annotations

from typing import Literal

from sqlmodel import Field, SQLModel

from control_plane.route.models import RouteGateway


class RoutePreview(SQLModel):
    """Where an account would be routed, and which grayscale rules decided it."""

    tenant: str
    account: str
    country: str | None = Field(description="ISO-3166 alpha-2 of `ip`, if known.")
    continent: str | None
    geo: Literal["admin", "none"] = Field(
        description="`admin`: located from `ip`; `none`: no `ip` (the default region)."
    )
    region: str | None = Field(description="The region the client maps to.")
    bucket: int = Field(description="The account's grayscale bucket, 0..99.")
    rule_id: str | None = Field(description="The first rule that decided anything.")
    pool_rule_id: str | None = Field(description="The rule that chose the gateway pool.")
    zone_rule_id: str | None = Field(description="The rule that chose the logic zone.")
    logic_zone: str | None = Field(description="The logic zone gateways will prefer.")
    pool: str | None = Field(description="The gateway pool served (`stable` = default).")
    fallback: bool = Field(description="True when the wanted pool or region had no live gateway.")
    gateways: list[RouteGateway] = Field(description="Empty when no gateway is live.")


class MetricsTarget(SQLModel):
    """One scraped metrics endpoint and how its last scrape went."""

    url: str
    up: bool
    error: str | None


class ChartPoint(SQLModel):
    """Rates over the interval ending at `at`, summed over every scraped process."""

    at: float = Field(description="Epoch seconds of the scrape.")
    messages_per_s: float = Field(description="1:1 and group messages sent per second.")
    logins_per_s: float = Field(description="Login attempts per second.")
    connections: float = Field(description="Open client connections.")
    p99_ms: float | None = Field(
        description="p99 of logic request latency in the interval; null: no request."
    )


class ConsoleMetrics(SQLModel):
    """Body of ``GET /v1/console/metrics``: the recent chart points, oldest first."""

    source: Literal["scrape", "registry"] = Field(
        description="`scrape`: the processes' metrics endpoints; `registry`: only the "
        "connections nodes heartbeat (no metrics targets configured)."
    )
    targets: list[MetricsTarget]
    points: list[ChartPoint]
