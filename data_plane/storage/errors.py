"""Errors of the storage backends, under one root.

Callers catch the ``*Unavailable`` errors to answer a clear status (the backend is down
or timing out) instead of crashing; the backend's own exception is chained as
``__cause__``.
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of every storage error."""


class SessionStoreUnavailable(StorageError):
    """The session store's backend is unreachable, timing out or failing over."""


class MessageStoreUnavailable(StorageError):
    """The message store's backend is unreachable or timing out."""


class UnsupportedSessionStoreURL(StorageError, ValueError):
    """The URL names no session store backend that cirno-im supports."""
