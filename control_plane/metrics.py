"""Prometheus metrics of the control plane's HTTP API.

Each app has its own ``CollectorRegistry`` (tests create many apps in one process).
Requests are labelled by route *template* (``/v1/tenants/{tenant_id}``), never by raw
path, so the number of series stays bounded; unrouted requests share one label. The
method is a client's choice too (any token parses as one): methods other than the
standard ones share the label ``OTHER``.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
MAX_CACHED_SERIES = 4096
"""Label combinations whose children the middleware keeps at hand (the rest look theirs up)."""


class HttpMetrics:
    """The HTTP request counter and latency histogram of one app."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "cirno_control_http_requests",
            "HTTP requests answered by the control plane.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "cirno_control_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and observe its latency.

        ``labels()`` validates and joins its values under a lock on every call; the
        children of each (method, route, status) are looked up once and kept (up to
        :data:`MAX_CACHED_SERIES`; series are never removed, so a kept child stays the
        registered one).
        """
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            if len(self._children) < MAX_CACHED_SERIES:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class MetricsMiddleware:
    """Pure ASGI middleware counting every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_code = 500  # what the client sees if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # The router stores the matched route in the (shared) scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
            self.metrics.record(method, route, status_code, time.perf_counter() - started)
