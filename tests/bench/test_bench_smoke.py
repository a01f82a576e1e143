"""The benchmark code runs end to end with tiny counts (the numbers are not checked).

``python -m bench.run`` is run by hand or ``make bench``; this only guards against the
load generators rotting: a few messages through the all-in-one and the bare relay,
every one acknowledged and pushed.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bench.chat_bench import ChatConfig, run_chat
from bench.group_bench import GroupConfig, run_group
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
