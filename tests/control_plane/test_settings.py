"""``ControlPlaneSettings.from_env``."""

from __future__ import annotations

import pytest

from control_plane.__main__ import main
from control_plane.errors import ConfigurationError
from control_plane.settings import ControlPlaneSettings

REQUIRED = {"CIRNO_ADMIN_TOKEN": "adm", "CIRNO_CLUSTER_SECRET": "cls"}


def test_defaults() -> None:
    settings = ControlPlaneSettings.from_env(REQUIRED)
    assert settings == ControlPlaneSettings(
        database_url="sqlite:///./data/control.db",
        admin_token="adm",
        cluster_secret="cls",
        host="127.0.0.1",
        port=8080,
    )
    assert "adm" not in repr(settings) and "cls" not in repr(settings)


def test_everything_from_the_environment() -> None:
    settings = ControlPlaneSettings.from_env(
        {
            **REQUIRED,
            "CIRNO_DATABASE_URL": "mysql://u:p@db:3306/cirno",
            "CIRNO_DATA_DIR": "/ignored",
            "CIRNO_CONTROL_HOST": "0.0.0.0",
            "CIRNO_CONTROL_PORT": "9000",
        }
    )
    assert settings.database_url == "mysql://u:p@db:3306/cirno"
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


def test_data_dir_moves_the_default_database() -> None:
    settings = ControlPlaneSettings.from_env({**REQUIRED, "CIRNO_DATA_DIR": "/var/lib/cirno"})
    assert settings.database_url == "sqlite:////var/lib/cirno/control.db"


@pytest.mark.parametrize("missing", ["CIRNO_ADMIN_TOKEN", "CIRNO_CLUSTER_SECRET"])
def test_required_secrets(missing: str) -> None:
    for environ in ({k: v for k, v in REQUIRED.items() if k != missing}, {**REQUIRED, missing: ""}):
        with pytest.raises(ConfigurationError, match=missing):
            ControlPlaneSettings.from_env(environ)


@pytest.mark.parametrize("port", ["http", "0", "70000"])
def test_bad_port(port: str) -> None:
    with pytest.raises(ConfigurationError, match="CIRNO_CONTROL_PORT"):
        ControlPlaneSettings.from_env({**REQUIRED, "CIRNO_CONTROL_PORT": port})


def test_main_exits_2_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CIRNO_ADMIN_TOKEN", raising=False)
    assert main() == 2
    assert "CIRNO_ADMIN_TOKEN" in capsys.readouterr().err


def test_registry_geoip_and_proxies_from_the_environment() -> None:
    settings = ControlPlaneSettings.from_env(
        {
            **REQUIRED,
            "CIRNO_NODE_TTL": "7.5",
            "CIRNO_GEOIP_DB": "/data/GeoLite2-City.mmdb",
            "CIRNO_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,fd00::/8,",
        }
    )
    assert settings.node_ttl == 7.5
    assert settings.lease_ttl == 3600.0  # the default id lease, longer than 2 x node TTL
    assert settings.geoip_db == "/data/GeoLite2-City.mmdb"
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "192.168.1.7/32",
        "fd00::/8",
    ]
    defaults = ControlPlaneSettings.from_env(REQUIRED)
    assert (defaults.node_ttl, defaults.geoip_db, defaults.trusted_proxies) == (15.0, None, ())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CIRNO_NODE_TTL", "soon"),
        ("CIRNO_NODE_TTL", "0"),
        ("CIRNO_NODE_TTL", "-3"),
        ("CIRNO_NODE_TTL", "inf"),
        ("CIRNO_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("CIRNO_TRUSTED_PROXIES", "proxy.example"),
    ],
)
def test_bad_registry_settings(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ControlPlaneSettings.from_env({**REQUIRED, name: value})


def test_id_lease_ttl_from_the_environment_never_below_twice_the_node_ttl() -> None:
    settings = ControlPlaneSettings.from_env({**REQUIRED, "CIRNO_ID_LEASE_TTL": "120"})
    assert settings.lease_ttl == 120.0
    short = ControlPlaneSettings.from_env(
        {**REQUIRED, "CIRNO_ID_LEASE_TTL": "5", "CIRNO_NODE_TTL": "10"}
    )
    assert short.lease_ttl == 20.0
    with pytest.raises(ConfigurationError, match="CIRNO_ID_LEASE_TTL"):
        ControlPlaneSettings.from_env({**REQUIRED, "CIRNO_ID_LEASE_TTL": "-1"})


def test_limits_default_on_and_from_the_environment() -> None:
    defaults = ControlPlaneSettings.from_env(REQUIRED)
    assert (defaults.max_body_bytes, defaults.max_header_bytes) == (1024 * 1024, 65536)
    assert (defaults.header_timeout, defaults.body_timeout) == (10.0, 30.0)
    assert defaults.max_connections == 1000
    settings = ControlPlaneSettings.from_env(
        {
            **REQUIRED,
            "CIRNO_CONTROL_MAX_BODY": "4096",
            "CIRNO_CONTROL_HEADER_TIMEOUT": "2.5",
            "CIRNO_CONTROL_BODY_TIMEOUT": "7",
            "CIRNO_CONTROL_MAX_HEADER_BYTES": "8192",
            "CIRNO_CONTROL_MAX_CONNECTIONS": "50",
        }
    )
    assert (settings.max_body_bytes, settings.max_header_bytes) == (4096, 8192)
    assert (settings.header_timeout, settings.body_timeout) == (2.5, 7.0)
    assert settings.max_connections == 50


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CIRNO_CONTROL_MAX_BODY", "0"),
        ("CIRNO_CONTROL_MAX_BODY", "1MiB"),
        ("CIRNO_CONTROL_HEADER_TIMEOUT", "0"),
        ("CIRNO_CONTROL_BODY_TIMEOUT", "nan"),
        ("CIRNO_CONTROL_MAX_HEADER_BYTES", "-1"),
        ("CIRNO_CONTROL_MAX_CONNECTIONS", "many"),
    ],
)
def test_limits_cannot_be_switched_off_or_garbled(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ControlPlaneSettings.from_env({**REQUIRED, name: value})
