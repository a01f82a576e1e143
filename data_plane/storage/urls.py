"""Database URL conventions shared by every process.

Operators write plain URLs: ``sqlite:///path/to/file.db`` or
``mysql://user:password@host:3306/database``. Code that needs a driver asks for the
async form (``sqlite+aiosqlite``, ``mysql+aiomysql``, used on the message path) or the
sync form (``sqlite``, ``mysql+pymysql``, used by alembic and the control plane).
"""

from __future__ import annotations

from urllib.parse import urlsplit

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "mysql": "mysql+aiomysql"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "mysql": "mysql+pymysql"}


class UnsupportedDatabaseURL(ValueError):
    """The URL names a database that cirno-im does not support."""


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"mysql"`` for a plain or driver-qualified URL."""
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    if scheme == "mariadb":
        scheme = "mysql"
    if scheme not in _ASYNC_DRIVERS:
        raise UnsupportedDatabaseURL(f"unsupported database URL scheme {scheme!r}")
    return scheme


def _with_scheme(url: str, scheme: str) -> str:
    _, sep, rest = url.partition(":")
    if not sep:
        raise UnsupportedDatabaseURL(f"not a database URL: {url!r}")
    return f"{scheme}:{rest}"


def async_url(url: str) -> str:
    """The SQLAlchemy async-driver form of ``url``."""
    return _with_scheme(url, _ASYNC_DRIVERS[backend_of(url)])


def sync_url(url: str) -> str:
    """The SQLAlchemy sync-driver form of ``url``."""
    return _with_scheme(url, _SYNC_DRIVERS[backend_of(url)])
