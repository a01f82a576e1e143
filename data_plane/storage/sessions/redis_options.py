"""How the Redis session store talks to its servers: timeouts, retries, pool sizes.

Every one has a default and can be set in the store's URL as a query parameter, so
``CIRNO_SESSION_URL`` carries them like the rest of the connection (for example
``redis+cluster://10.0.0.5:7001?timeout=1.5&socket_timeout=0.5``). Parameters this
module does not name are left in the URL for redis-py (``ssl_cert_reqs``, ...).

The bound a caller can rely on is ``timeout``: every store call (a lookup, an add,
a remove, a refresh, a ping) answers or raises ``SessionStoreUnavailable`` within
``timeout`` seconds of being made, retries and topology refreshes included, whatever
one server does — frozen, dead, or refusing connections. ``socket_timeout`` and
``socket_connect_timeout`` bound one read and one connect on one connection, so a
stalled server is given up on (and its connection closed) in that time and retried
while the deadline allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Connection settings of a :class:`~data_plane.storage.sessions.redis.RedisSessionStore`.

    ``timeout``: seconds a store call may take, all attempts included (the bound).
    ``socket_timeout`` / ``socket_connect_timeout``: seconds for one read / one connect.
    ``retries``: attempts after the first, with a jittered back-off of 10-500 ms, while
    ``timeout`` allows. ``max_connections``: pooled connections (per master on a
    cluster); on a single server a command waits up to ``socket_timeout`` for a free
    one. ``batch_size``: accounts per round trip in lookups and gateway cleanups.
    """

    timeout: float = 2.0
    socket_timeout: float = 1.0
    socket_connect_timeout: float = 1.0
    retries: int = 3
    max_connections: int = 100
    batch_size: int = 500

    def __post_init__(self) -> None:
        for name in ("timeout", "socket_timeout", "socket_connect_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if self.max_connections <= 0 or self.batch_size <= 0:
            raise ValueError("max_connections and batch_size must be positive")


_NAMES = {field.name: field.type for field in fields(RedisOptions)}


def split_options(url: str, defaults: RedisOptions) -> tuple[str, RedisOptions]:
    """``url`` without the query parameters that name :class:`RedisOptions` fields, and
    ``defaults`` with those parameters applied. Raises ValueError on a bad value."""
    parts = urlsplit(url)
    ours: dict[str, Any] = {}
    kept: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _NAMES:
            kept.append((name, value))
            continue
        try:
            ours[name] = float(value) if _NAMES[name] == "float" else int(value)
        except ValueError:
            raise ValueError(f"session store URL: {name}={value!r} is not a number") from None
    return urlunsplit(parts._replace(query=urlencode(kept))), replace(defaults, **ours)
