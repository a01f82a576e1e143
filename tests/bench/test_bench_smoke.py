"""The benchmark code runs end to end with tiny counts (the numbers are not checked).

``python -m bench.run`` is run by hand or ``make bench``; this only guards against the
load generators rotting: a few messages through the all-in-one and the bare relay,
every one acknowledged and pushed; a few connections, logins and a small catch-up on
the all-in-one pinned as ``--pinned`` pins it (every message once, in order).
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from bench.catchup_bench import CatchupConfig, run_catchup
from bench.chat_bench import ChatConfig, run_chat
from bench.conn_bench import ConnConfig, run_connections
from bench.group_bench import GroupConfig, run_group
from bench.login_bench import LoginConfig, run_logins
from bench.pinning import affinity, own_servers, pinned
from bench.targets import bare_relay, cirno_sqlite

pytestmark = [pytest.mark.e2e]

TINY_CHAT = ChatConfig(pairs=2, window=2, duration=0.4, warmup=0.1, drain_timeout=5.0)
TINY_GROUP = GroupConfig(members=4, messages=2, burst_messages=2, burst_window=2, timeout=10.0)


def test_chat_and_group_on_the_all_in_one(tmp_path: Path) -> None:
    with cirno_sqlite(tmp_path) as target:
        chat = anyio.run(run_chat, target, TINY_CHAT)
        group = anyio.run(run_group, target, TINY_GROUP)
    assert chat.acked > 0
    assert chat.failed == 0
    assert chat.pushes == chat.acked
    assert chat.missing_pushes == 0
    assert chat.response.count > 0
    assert [p.complete for p in group.passes] == [2, 2]
    assert all(p.deliveries == p.expected_deliveries for p in group.passes)


def test_chat_on_the_bare_relay(tmp_path: Path) -> None:
    with bare_relay(tmp_path) as target:
        chat = anyio.run(run_chat, target, TINY_CHAT)
    assert chat.acked > 0
    assert chat.pushes == chat.acked


TINY_CONNECTIONS = ConnConfig(connections=40, workers=2, login_concurrency=10, settle=0.2)
TINY_LOGINS = LoginConfig(in_flight=4, duration=0.4, warmup=0.1)
TINY_CATCHUP = CatchupConfig(messages=450, senders=3, window=8, content_in_flight=2)


def test_connections_logins_and_catchup_on_the_pinned_all_in_one(tmp_path: Path) -> None:
    with (
        cirno_sqlite(tmp_path) as target,
        pinned(own_servers(target.processes.values()), 0, 1) as server_pids,
    ):
        gateway = target.processes["gateway"]
        assert gateway in server_pids
        assert affinity(gateway) == {0}
        assert os.sched_getaffinity(0) == {1}
        connections = run_connections(target, TINY_CONNECTIONS)
        logins = anyio.run(run_logins, target, TINY_LOGINS)
        catchup = anyio.run(run_catchup, target, TINY_CATCHUP)
    assert (connections.opened, connections.failed) == (40, 0)
    assert connections.rss_open_kib > 0 and connections.rss_closed_kib > 0
    assert logins.completed > 0 and logins.failed == 0
    assert logins.latency.count > 0
    # Every message arrives once, in order, in 450 / 200 -> 3 content requests.
    assert (catchup.received, catchup.duplicates, catchup.out_of_order) == (450, 0, 0)
    assert catchup.content_requests == 3
    assert catchup.total_seconds >= catchup.index_seconds > 0


def test_connections_on_the_bare_relay(tmp_path: Path) -> None:
    with bare_relay(tmp_path) as target:
        connections = run_connections(target, TINY_CONNECTIONS)
    assert connections.process == "relay-front"
    assert (connections.opened, connections.failed) == (40, 0)
