"""Pick the session store a process was configured with.

The embedded default (no URL, or ``memory://``) is the in-process store, which serves a
single logic node; more logic nodes share Redis or Redis Cluster.
"""

from __future__ import annotations

from data_plane.storage.sessions.memory import MemorySessionStore
from data_plane.storage.sessions.protocol import Location, SessionStore
from data_plane.storage.sessions.redis import RedisSessionStore

__all__ = ["Location", "SessionStore", "session_store_from_url"]


def session_store_from_url(
    url: str | None, *, prefix: str = "cirno", location_ttl_s: int | None = None
) -> SessionStore:
    """The session store for ``url``.

    ``None`` or ``memory://`` gives a :class:`MemorySessionStore`; ``redis://``,
    ``rediss://``, ``unix://``, ``redis+cluster://`` and ``rediss+cluster://`` give a
    :class:`RedisSessionStore` with keys under ``prefix`` whose locations expire
    ``location_ttl_s`` after their last add or refresh (None: never); its timeouts,
    retries and pool sizes come from the URL's query parameters
    (:class:`~data_plane.storage.sessions.redis_options.RedisOptions`, e.g.
    ``redis+cluster://h:7001?timeout=1.5``), else their defaults. Any other URL raises
    :class:`~data_plane.storage.errors.UnsupportedSessionStoreURL`.
    """
    if url is None or url == "memory://":
        return MemorySessionStore()
    return RedisSessionStore.from_url(url, prefix=prefix, location_ttl_s=location_ttl_s)
