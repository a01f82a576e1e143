"""A small MaxMind-format database written with ``mmdb-writer``, for GeoIP tests.

Two countries with IPv4 and IPv6 networks (Germany in Europe, the US in North America),
plus a French and a Japanese network that only a continent mapping can catch.
"""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

NETWORKS: dict[tuple[str, str], list[str]] = {
    ("DE", "EU"): ["5.9.0.0/16", "2a01:4f8::/32"],
    ("US", "NA"): ["8.8.0.0/16", "2001:4860::/32"],
    ("FR", "EU"): ["2.0.0.0/16"],
    ("JP", "AS"): ["1.0.16.0/20", "2400:4000::/22"],
}
DE_V4, DE_V6 = "5.9.1.2", "2a01:4f8::1"
US_V4, US_V6 = "8.8.4.4", "2001:4860::8888"
FR_V4 = "2.0.3.4"
JP_V4 = "1.0.16.1"
UNKNOWN_V4 = "9.9.9.9"


def write_mmdb(path: Path, database_type: str = "GeoLite2-City") -> Path:
    """Write the test database to ``path`` (City, Country or any other type name)."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description="cirno-im test GeoIP database",
    )
    for (country, continent), networks in NETWORKS.items():
        writer.insert_network(
            IPSet(networks),
            {
                "country": {"iso_code": country, "names": {"en": country}},
                "continent": {"code": continent, "names": {"en": continent}},
            },
        )
    writer.to_db_file(str(path))
    return path
