"""Reading a ``GET /v1/route`` request from its raw ASGI parts, and refusing it.

Both ways the route is served (``control_plane.route.fast_path`` and
``control_plane.route.api``) hand :class:`~control_plane.route.service.RouteService` the
raw query string and header list; this module reads them the way Starlette would, so
that the two ways see the same values. :class:`RouteRefused` is the one way a route
request fails on purpose: a status, a reason and the response headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

ADMIN_HEADER = "X-Cirno-Admin-Token"
PARAMETER_LIMITS: dict[str, int | None] = {"token": None, "version": 32, "platform": 32, "ip": 64}
"""The query parameters the route reads, with their maximum lengths (longer → 400)."""
_ADMIN_HEADER_KEY = ADMIN_HEADER.lower().encode("latin-1")

RawHeaders = Iterable[tuple[bytes, bytes]]
"""ASGI ``scope["headers"]``: lower-case names, latin-1 values, in request order."""


class RouteRefused(Exception):
    """The route request is refused: ``status``, ``detail`` and extra response headers.

    Rendered as ``{"detail": detail}`` with ``headers``, exactly as FastAPI renders an
    ``HTTPException(status, detail, headers)``.
    """

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def read_parameters(query_string: bytes) -> dict[str, str | None]:
    """The route's query parameters, length-checked (:class:`RouteRefused` 400 if too long).

    Parsed as Starlette parses ``request.query_params`` (latin-1, blank values kept, the
    last of repeated names wins), so both ways of serving the route read the same values.
    """
    query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    values: dict[str, str | None] = {}
    for name, limit in PARAMETER_LIMITS.items():
        value = query.get(name)
        if value is not None and limit is not None and len(value) > limit:
            raise RouteRefused(400, f"{name} is longer than {limit} characters")
        values[name] = value
    return values


def read_headers(headers: RawHeaders) -> tuple[str | None, str | None, list[str]]:
    """``Authorization`` and the admin header (the first of each, as Starlette's
    ``headers.get``) and every ``X-Forwarded-For`` value, in one pass."""
    authorization: str | None = None
    admin_token: str | None = None
    forwarded_for: list[str] = []
    for name, value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == _ADMIN_HEADER_KEY:
            if admin_token is None:
                admin_token = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
    return authorization, admin_token, forwarded_for


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer …`` header (None for other schemes)."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None
