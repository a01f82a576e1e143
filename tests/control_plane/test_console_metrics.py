"""The console's chart arithmetic (``control_plane.console.metrics``): pure, no I/O."""

from __future__ import annotations

import math

import pytest

from control_plane.console.metrics import History, Totals, combine, parse_totals, quantile
from control_plane.console.settings import parse_targets
from control_plane.errors import ConfigurationError

GATEWAY = """\
# TYPE cirno_gateway_connections gauge
cirno_gateway_connections{transport="ws"} 3.0
cirno_gateway_connections{transport="tcp"} 2.0
# TYPE cirno_gateway_logins_total counter
cirno_gateway_logins_total{result="ok"} 7.0
cirno_gateway_logins_total{result="unauthorized"} 1.0
"""
LOGIC = """\
# TYPE cirno_logic_requests_total counter
cirno_logic_requests_total{command="chat.user.talk",outcome="ok"} 5.0
cirno_logic_requests_total{command="chat.group.talk",outcome="error"} 2.0
cirno_logic_requests_total{command="login.signin",outcome="ok"} 8.0
# TYPE cirno_logic_request_seconds histogram
cirno_logic_request_seconds_bucket{command="a",le="0.01"} 4.0
cirno_logic_request_seconds_bucket{command="a",le="+Inf"} 4.0
cirno_logic_request_seconds_bucket{command="b",le="0.01"} 1.0
cirno_logic_request_seconds_bucket{command="b",le="+Inf"} 2.0
"""


def test_totals_sum_every_process() -> None:
    totals = parse_totals([GATEWAY, LOGIC, GATEWAY])
    assert (totals.connections, totals.logins, totals.messages) == (10.0, 16.0, 7.0)
    assert totals.latency_buckets == ((0.01, 5.0), (math.inf, 6.0))
    assert combine(parse_totals([text]) for text in (GATEWAY, LOGIC, GATEWAY)) == totals


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1  # in +Inf: highest bound
    assert quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_rates_survive_a_counter_reset() -> None:
    history = History(limit=2)
    assert history.observe(100.0, Totals(messages=50, logins=10)) is None
    point = history.observe(102.0, Totals(messages=70, logins=10, connections=4))
    assert point is not None
    assert (point.messages_per_s, point.logins_per_s, point.connections) == (10.0, 0.0, 4.0)
    restarted = history.observe(103.0, Totals(messages=6, logins=1))
    assert restarted is not None and restarted.messages_per_s == 6.0
    assert history.observe(103.0, Totals()) is None  # the clock did not move
    assert [p.at for p in history.points] == [102.0, 103.0]


def test_targets_setting() -> None:
    assert parse_targets(" http://a:1/metrics, ,https://b/m ") == (
        "http://a:1/metrics",
        "https://b/m",
    )
    with pytest.raises(ConfigurationError, match="CIRNO_METRICS_TARGETS"):
        parse_targets("a:1/metrics")
