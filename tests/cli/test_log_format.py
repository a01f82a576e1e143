"""``CIRNO_LOG_FORMAT=json``: every line a process logs is one JSON object, events with
their fields; a bad format is one clear line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from cirno.harness import Cluster, RawClient, make_token, run_cluster
from data_plane.wire import Status
from tests.cli.cli import assert_one_clear_line, cirno

pytestmark = pytest.mark.e2e

TENANT, SECRET = "jsonco", "jsonco-secret-0123456789-abcdefgh"


async def _refused_login(cluster: Cluster) -> None:
    client = await RawClient.websocket(cluster.ws_url)
    try:
        forged = make_token(TENANT, "eve", "a-wrong-secret-0123456789-abcdefgh")
        assert (await client.login(forged)).status == Status.UNAUTHORIZED
    finally:
        client.close()
        await anyio.sleep(0.05)


def test_json_log_lines_parse_and_carry_the_event_fields(tmp_path: Path) -> None:
    with run_cluster(tmp_path, CIRNO_LOG_FORMAT="json") as cluster:
        cluster.create_tenant(TENANT, SECRET)
        anyio.run(_refused_login, cluster)
        deadline = time.monotonic() + 5
        while '"login_refused"' not in cluster.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    objects = []
    for line in cluster.log().splitlines():
        if line.startswith("{"):
            objects.append(json.loads(line))
        else:  # cirno up's own lines for people: the admin token, "up", "stopped"
            assert line.startswith(("cirno-im ", "CIRNO_ADMIN_TOKEN")), line
    assert {"logic", "gateway"} <= {o["role"] for o in objects}  # control: nothing at INFO
    for record in objects:
        assert {"time", "level", "logger", "message", "role", "pid"} <= record.keys()
        assert record["time"].endswith("Z")
    refused = [o for o in objects if o.get("event") == "login_refused"]
    assert len(refused) == 1, refused
    event = refused[0]
    assert (event["level"], event["logger"]) == ("INFO", "data_plane.gateway.events")
    assert event["tenant"] == TENANT and event["status"] == Status.UNAUTHORIZED
    assert event["reason"] and event["peer"].startswith("127.0.0.1:")
    assert [o for o in objects if o["level"] in ("WARNING", "ERROR")] == []


def test_an_unknown_log_format_is_one_clear_line() -> None:
    run = cirno("gateway", env={"CIRNO_CLUSTER_SECRET": "s", "CIRNO_LOG_FORMAT": "xml"})
    assert_one_clear_line(run, "CIRNO_LOG_FORMAT must be one of text, json")
