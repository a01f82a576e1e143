"""GeoIP: an IP address to a country and a continent, from a MaxMind-format database.

``GeoResolver(path)`` opens a ``.mmdb`` file with geoip2's ``Reader`` and uses ``city()``
on City databases and ``country()`` on Country databases (geoip2 refuses the other
method); any other database type is read as a raw record with the same ``country`` /
``continent`` layout. Without a path every lookup answers ``source="none"``, and the
router sends the client to the default region. Lookups are thread-safe and never raise
for an address: unknown, private or malformed addresses give ``source="none"``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import geoip2.database
import geoip2.errors
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
        self._reader: geoip2.database.Reader | None = None
        self._lookup: Callable[[IPAddress], GeoResult] = _nothing
        if not path:
            return
        try:
            reader = geoip2.database.Reader(path)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigurationError(f"cannot open GeoIP database {path!r}: {exc}") from exc
        self._reader = reader
        self.database_type: str = reader.metadata().database_type
        if "City" in self.database_type:
            self._lookup = self._city
        elif "Country" in self.database_type:
            self._lookup = self._country
        else:
            self._lookup = self._raw

    @property
    def enabled(self) -> bool:
        """Whether a database is loaded."""
        return self._reader is not None

    def lookup(self, ip: str | IPAddress) -> GeoResult:
        """Locate ``ip``; ``source="none"`` when there is no database or no record."""
        if self._reader is None:
            return NOT_FOUND
        try:
            address = ip if not isinstance(ip, str) else ipaddress.ip_address(ip)
        except ValueError:
            return NOT_FOUND
        try:
            return self._lookup(address)
        except (geoip2.errors.AddressNotFoundError, ValueError, maxminddb.InvalidDatabaseError):
            return NOT_FOUND

    def _city(self, address: IPAddress) -> GeoResult:
        assert self._reader is not None
        found = self._reader.city(address)
        return _result(found.country.iso_code, found.continent.code)

    def _country(self, address: IPAddress) -> GeoResult:
        assert self._reader is not None
        found = self._reader.country(address)
        return _result(found.country.iso_code, found.continent.code)

    def _raw(self, address: IPAddress) -> GeoResult:
        assert self._reader is not None
        record: Any = self._reader._db_reader.get(address)  # no public raw get
        if not isinstance(record, Mapping):
            return NOT_FOUND
        return _result(_code(record.get("country"), "iso_code"), _code(record.get("continent")))

    def close(self) -> None:
        """Close the database file."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
            self._lookup = _nothing


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


def _nothing(_address: IPAddress) -> GeoResult:
    return NOT_FOUND
