"""Pure parts of routing: client address, zone weights, load steps, fallbacks."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import geoip2.database
import geoip2.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.geoip import GeoResolver, GeoResult
from control_plane.route.address import BadAddress, client_address, parse_ip
from control_plane.route.choice import choose_gateways, order_gateways, resolve_region
from control_plane.route.snapshot import GatewayView, Snapshot, load_step, make_snapshot
from control_plane.settings import parse_networks
from tests.control_plane.geo import DE_V4, DE_V6, JP_V4, UNKNOWN_V4, US_V4, write_mmdb

TRUSTED = parse_networks("10.0.0.0/8, 192.168.1.1, fd00::/8")


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("1.2.3.4", [], "1.2.3.4"),
        ("1.2.3.4", ["5.6.7.8"], "1.2.3.4"),  # untrusted peer: header ignored
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["5.6.7.8"], "5.6.7.8"),
        ("10.0.0.1", ["1.1.1.1, 5.6.7.8"], "5.6.7.8"),  # rightmost untrusted hop
        ("10.0.0.1", ["1.1.1.1, 5.6.7.8, 10.2.2.2"], "5.6.7.8"),
        ("10.0.0.1", ["1.1.1.1", "5.6.7.8, 192.168.1.1"], "5.6.7.8"),  # several headers
        ("10.0.0.1", ["10.3.3.3, 10.4.4.4"], "10.3.3.3"),  # all trusted: the leftmost
        ("10.0.0.1", ["5.6.7.8:443"], "5.6.7.8"),
        ("fd00::1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::ffff:10.0.0.1", ["5.6.7.8"], "5.6.7.8"),  # IPv4-mapped peer
        ("10.0.0.1", [" , "], "10.0.0.1"),
    ],
)
def test_client_address(peer: str, forwarded: list[str], expected: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == ip(expected)


def test_client_address_edge_cases() -> None:
    assert client_address(None, ["1.1.1.1"], TRUSTED) is None
    assert client_address("testclient", ["1.1.1.1"], TRUSTED) is None
    with pytest.raises(BadAddress):
        client_address("10.0.0.1", ["1.1.1.1, nope"], TRUSTED)
    assert client_address("1.2.3.4", ["nope"], TRUSTED) == ip("1.2.3.4")
    with pytest.raises(BadAddress):
        parse_ip("1.2.3")


def gw(gid: str, zone: str = "a", region: str = "eu", **kw: object) -> GatewayView:
    values: dict[str, object] = {
        "id": gid,
        "zone": zone,
        "region": region,
        "pool": "",
        "ws_url": f"ws://{gid}",
        "tcp_addr": None,
        "connections": 0,
        "capacity": 100,
        "draining": False,
        "expires_at": 1000.0,
    }
    values.update(kw)
    return GatewayView(**values)  # type: ignore[arg-type]


def test_load_steps() -> None:
    assert [load_step(gw("g", connections=c)) for c in (0, 9, 10, 55, 99, 100, 500)] == [
        0,
        0,
        1,
        5,
        9,
        10,
        10,
    ]


def test_zones_get_shares_by_weight() -> None:
    gateways = [gw("a1", "za"), gw("b1", "zb"), gw("c1", "zc")]
    weights = {"za": 6, "zb": 3, "zc": 1}
    firsts = Counter(order_gateways(gateways, weights, f"user{i}")[0].zone for i in range(10_000))
    assert firsts["za"] == pytest.approx(6000, abs=300)
    assert firsts["zb"] == pytest.approx(3000, abs=300)
    assert firsts["zc"] == pytest.approx(1000, abs=200)
    # Listed zones before unlisted ones.
    with_stranger = [*gateways, gw("x1", "zx")]
    assert all(order_gateways(with_stranger, weights, f"u{i}")[-1].zone == "zx" for i in range(50))


def test_removing_a_zone_moves_only_its_accounts() -> None:
    weights = {"za": 1, "zb": 1, "zc": 1}
    full = [gw("a1", "za"), gw("b1", "zb"), gw("c1", "zc")]
    before = {f"u{i}": order_gateways(full, weights, f"u{i}")[0].zone for i in range(1000)}
    after = {f"u{i}": order_gateways(full[:2], weights, f"u{i}")[0].zone for i in range(1000)}
    moved = {a for a in before if before[a] != after[a]}
    assert moved == {a for a in before if before[a] == "zc"}


def snapshot(*gateways: GatewayView) -> Snapshot:
    return make_snapshot(
        loaded_at=0,
        gateways=gateways,
        zone_weights={"eu": {"a": 1}},
        by_country={"DE": "eu"},
        by_continent={"EU": "eu", "NA": "us"},
        default_region="eu",
    )


def test_resolve_region() -> None:
    snap = snapshot()
    assert resolve_region(snap, "DE", "EU") == "eu"
    assert resolve_region(snap, "US", "NA") == "us"
    assert resolve_region(snap, "FR", "EU") == "eu"
    assert resolve_region(snap, None, None) == "eu"
    assert resolve_region(Snapshot(loaded_at=0), "DE", "EU") is None


def test_fallback_chain() -> None:
    snap = snapshot(
        gw("eu-stable"),
        gw("eu-canary", pool="canary"),
        gw("us-stable", region="us"),
        gw("us-beta", region="us", pool="beta"),
        gw("no-address", ws_url=None),
        gw("gone", expires_at=10.0),
        gw("drain", draining=True),
    )
    now = 100.0

    def pick(region: str | None, pool: str | None) -> tuple[list[str], str | None, bool]:
        choice = choose_gateways(snap, region, pool, "alice", now)
        return [g.id for g in choice.gateways], choice.pool, choice.fallback

    assert pick("eu", None) == (["eu-stable"], "stable", False)
    assert pick("eu", "stable") == (["eu-stable"], "stable", False)
    assert pick("eu", "canary") == (["eu-canary"], "canary", False)
    assert pick("us", "canary") == (["us-stable"], "stable", True)  # region's default pool
    assert pick("eu", "beta") == (["eu-stable"], "stable", True)
    assert pick("asia", "beta") == (["us-beta"], "beta", True)  # the pool anywhere
    assert pick("asia", None)[2] is True
    why = choose_gateways(snap, "us", "canary", "alice", now).fallback_reason
    assert why == "no live gateway in pool canary of region us"
    assert choose_gateways(snap, None, "gamma", "alice", now).fallback_reason == (
        "no live gateway in pool gamma"
    )
    assert choose_gateways(snap, "eu", "canary", "alice", now).fallback_reason is None
    only_beta = snapshot(gw("b", pool="beta"))
    choice = choose_gateways(only_beta, "eu", None, "alice", now)
    assert ([g.id for g in choice.gateways], choice.pool, choice.fallback) == (["b"], None, True)
    assert choose_gateways(snapshot(gw("gone", expires_at=1)), "eu", None, "a", now).gateways == []


@pytest.mark.parametrize("database_type", ["GeoLite2-City", "GeoIP2-Country", "DBIP-Lite"])
def test_geo_resolver_reads_each_database_type(tmp_path: Path, database_type: str) -> None:
    resolver = GeoResolver(str(write_mmdb(tmp_path / "db.mmdb", database_type)))
    try:
        assert resolver.enabled
        assert resolver.lookup(DE_V4) == GeoResult("DE", "EU", "db")
        assert resolver.lookup(ip(DE_V6)) == GeoResult("DE", "EU", "db")
        assert resolver.lookup(US_V4) == GeoResult("US", "NA", "db")
        assert resolver.lookup(JP_V4) == GeoResult("JP", "AS", "db")
        for unknown in (UNKNOWN_V4, "10.0.0.1", "::1", "not an ip"):
            assert resolver.lookup(unknown) == GeoResult(None, None, "none")
    finally:
        resolver.close()
    assert resolver.lookup(DE_V4).source == "none"


addresses = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6),
    st.sampled_from([DE_V4, DE_V6, US_V4, JP_V4, "2.0.3.4", "2001:4860::8888"]).map(ip),
    st.integers(0, 255).map(lambda n: ip(f"5.9.{n}.1")),
)


@pytest.mark.parametrize("database_type", ["GeoLite2-City", "GeoIP2-Country"])
def test_geo_resolver_agrees_with_geoip2_models(tmp_path: Path, database_type: str) -> None:
    """The raw record gives the codes geoip2's ``city()`` / ``country()`` give."""
    path = str(write_mmdb(tmp_path / "db.mmdb", database_type))
    resolver = GeoResolver(path)
    reference = geoip2.database.Reader(path)
    model = reference.city if "City" in database_type else reference.country

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(addresses)
    def agree(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        try:
            found = model(address)
            codes = (found.country.iso_code, found.continent.code)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            codes = (None, None)
        expected = (
            GeoResult(*codes, "db") if codes != (None, None) else GeoResult(None, None, "none")
        )
        assert resolver.lookup(address) == expected

    try:
        agree()
    finally:
        resolver.close()
        reference.close()


def test_geo_resolver_without_a_database() -> None:
    resolver = GeoResolver(None)
    assert not resolver.enabled
    assert resolver.lookup(DE_V4) == GeoResult(None, None, "none")


def test_geo_resolver_refuses_a_broken_file(tmp_path: Path) -> None:
    from control_plane.errors import ConfigurationError

    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    with pytest.raises(ConfigurationError, match="GeoIP"):
        GeoResolver(str(broken))
    with pytest.raises(ConfigurationError, match="GeoIP"):
        GeoResolver(str(tmp_path / "missing.mmdb"))
