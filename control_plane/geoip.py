"""GeoIP: an IP address to a country and a continent, from a MaxMind-format database.

``GeoResolver(path)`` opens a ``.mmdb`` file with ``maxminddb`` (its C extension, the
file memory-mapped) and reads the raw record of an address: ``country.iso_code`` and
``continent.code``, the fields geoip2's ``city()`` (City databases) and ``country()``
(Country databases) return as ``country.iso_code`` and ``continent.code``. Reading the
raw record gives the same two codes about eight times cheaper than building geoip2's
whole ``City`` model (``/v1/route`` does one lookup per request), and it reads any
database type with that layout (DB-IP's included). Without a path every lookup answers
``source="none"``, and the router sends the client to the default region. Lookups are
thread-safe and never raise for an address: unknown, private or malformed addresses,
and records without the two codes, give ``source="none"``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import maxminddb

from control_plane.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class GeoResult:
    """Where an address is: ISO-3166 alpha-2 country and continent code, if known."""

    country: str | None
    continent: str | None
    source: Literal["db", "none"]


NOT_FOUND = GeoResult(country=None, continent=None, source="none")


class GeoResolver:
    """Country and continent lookups on an optional MaxMind-format database."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._reader: Any = None  # maxminddb's Reader (C extension or pure Python)
        self.database_type: str | None = None
        if not path:
            return
        try:
            reader = maxminddb.open_database(path)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigurationError(f"cannot open GeoIP database {path!r}: {exc}") from exc
        self._reader = reader
        self.database_type = reader.metadata().database_type

    @property
    def enabled(self) -> bool:
        """Whether a database is loaded."""
        return self._reader is not None

    def lookup(self, ip: str | IPAddress) -> GeoResult:
        """Locate ``ip``; ``source="none"`` when there is no database or no record."""
        reader = self._reader
        if reader is None:
            return NOT_FOUND
        try:
            address = ip if not isinstance(ip, str) else ipaddress.ip_address(ip)
            record = reader.get(address)
        except (ValueError, maxminddb.InvalidDatabaseError):
            return NOT_FOUND
        if not isinstance(record, Mapping):
            return NOT_FOUND
        return _result(_code(record.get("country"), "iso_code"), _code(record.get("continent")))

    def close(self) -> None:
        """Close the database file."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _code(section: object, key: str = "code") -> str | None:
    if isinstance(section, Mapping):
        value = section.get(key)
        if isinstance(value, str):
            return value
    return None


def _result(country: str | None, continent: str | None) -> GeoResult:
    if country is None and continent is None:
        return NOT_FOUND
    return GeoResult(
        country=country.upper() if country else None,
        continent=continent.upper() if continent else None,
        source="db",
    )
