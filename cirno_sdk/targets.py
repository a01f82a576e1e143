"""Where a client connects: one URL, a list of gateways, or a resolver.

Theory of operation
-------------------
The client asks its :class:`Targets` for a URL before every connection attempt (the
first one and every reconnect) and tells it when a connection failed or was lost:

- a **fixed URL** is always the answer;
- a **list** of gateway URLs is walked round-robin: the client stays on a gateway while
  it works and moves to the next one after each failed attempt or lost connection, so
  a client whose gateway died (or is draining, closing with 1001) lands on another;
- a **resolver** (an async callable returning a URL, e.g. :func:`route_resolver` asking
  the control plane's ``GET /v1/route``) is called every time. When it fails, the
  last URL it gave is used again; when it has never succeeded, the attempt counts as a
  failed connection (back-off, then the resolver is asked again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from cirno_sdk.errors import ConnectFailed

log = logging.getLogger("cirno_sdk")

Resolver = Callable[[], Awaitable[str]]
"""An async callable answering the URL to connect to now."""

Target = str | Sequence[str] | Resolver
"""What :class:`~cirno_sdk.Client` accepts as its address."""

Token = str | Callable[[], Awaitable[str]]
"""A user token, or an async callable returning a fresh one."""


class Targets:
    """The URL of the next connection attempt, from a :data:`Target`."""

    def __init__(self, target: Target) -> None:
        self._urls: tuple[str, ...] = ()
        self._resolver: Resolver | None = None
        if isinstance(target, str):
            self._urls = (target,)
        elif callable(target):
            self._resolver = target
        else:
            self._urls = tuple(target)
            if not self._urls or not all(isinstance(url, str) for url in self._urls):
                raise ValueError("a list of gateway URLs must hold at least one URL string")
        self._index = 0
        self._last: str | None = None

    @property
    def description(self) -> str:
        """Where the client connects, for messages."""
        if self._resolver is not None:
            return f"the resolver's gateway (last {self._last or 'none yet'})"
        if len(self._urls) == 1:
            return self._urls[0]
        return f"any of {', '.join(self._urls)}"

    @property
    def last(self) -> str | None:
        """The URL returned by the latest :meth:`next_url` (None before the first)."""
        return self._last

    async def next_url(self) -> str:
        """The URL to connect to now. Raises :class:`ConnectFailed` when a resolver
        fails and has never answered before."""
        if self._resolver is None:
            self._last = self._urls[self._index]
            return self._last
        try:
            url = await self._resolver()
        except Exception as exc:
            if self._last is None:
                raise ConnectFailed(f"the gateway resolver failed: {exc!r}") from exc
            log.info("gateway resolver failed (%r); using %s again", exc, self._last)
            return self._last
        self._last = url
        return url

    def failed(self) -> None:
        """The connection to the latest URL failed or was lost: move on (lists)."""
        if len(self._urls) > 1:
            self._index = (self._index + 1) % len(self._urls)


def route_resolver(
    control_url: str,
    token: Token,
    *,
    platform: str | None = None,
    version: str | None = None,
    timeout: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Resolver:
    """A resolver asking the control plane where to connect (``GET /v1/route``).

    Each call sends ``?token=…`` (plus ``platform`` and ``version`` when given) to
    ``{control_url}/v1/route`` and answers a ``ws_url`` of the ``gateways`` list of the
    JSON answer: the first one -- unless it is the gateway this resolver answered last
    time while others are offered. The resolver is only called again when that
    connection failed or was lost, and a gateway killed a moment ago stays in the
    registry's answer until its heartbeat expires, so trying the next one first avoids
    a dead end. On any failure (control plane unreachable, error status, no gateway,
    malformed JSON) it answers the last URL it gave; before the first success it raises
    :class:`ConnectFailed`. ``transport`` is for tests (``httpx.MockTransport``).
    """
    endpoint = control_url.rstrip("/") + "/v1/route"
    last: str | None = None

    async def resolve() -> str:
        nonlocal last
        try:
            value = token if isinstance(token, str) else await token()
            params = {"token": value}
            if platform is not None:
                params["platform"] = platform
            if version is not None:
                params["version"] = version
            async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
                answer = await http.get(endpoint, params=params)
            answer.raise_for_status()
            urls = _ws_urls(answer.json())
        except (httpx.HTTPError, ValueError) as exc:
            if last is None:
                raise ConnectFailed(f"no route from {endpoint}: {exc}") from exc
            log.info("route lookup failed (%s); using %s again", exc, last)
            return last
        chosen = urls[0]
        if chosen == last and len(urls) > 1:
            chosen = urls[1]
        last = chosen
        return chosen

    return resolve


def _ws_urls(answer: Any) -> list[str]:
    """The ``ws_url`` of each gateway of a route answer; ValueError when there is none."""
    gateways = answer.get("gateways") if isinstance(answer, dict) else None
    if not isinstance(gateways, list):
        raise ValueError("the route answer has no gateways list")
    urls = [
        g["ws_url"]
        for g in gateways
        if isinstance(g, dict) and isinstance(g.get("ws_url"), str) and g["ws_url"]
    ]
    if not urls:
        raise ValueError("the route answer names no gateway with a ws_url")
    return urls
