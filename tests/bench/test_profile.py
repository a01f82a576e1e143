"""``bench.profile``: a real profile of the all-in-one, and how samples become areas."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bench.profile import area_of, busiest, chat_workload, profile, summarize_raw

pytestmark = [pytest.mark.e2e]

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def test_a_sample_is_charged_to_its_innermost_frame_with_an_area() -> None:
    raw = [
        "main (cirno/cli.py:1);dispatch (data_plane/logic/router.py:98);"
        "send (data_plane/storage/messages/store.py:193);_execute (aiosqlite/core.py:158) 3",
        "main (cirno/cli.py:1);encode (data_plane/wire/logic_packet.py:216) 1",
        "main (cirno/cli.py:1);run (asyncio/runners.py:118) 1",
        "not a sample line",
    ]
    summary = summarize_raw(iter(raw))
    assert summary["samples"] == 5
    assert summary["areas_percent"] == {
        "drivers (SQL, Redis)": 60.0,
        "wire codec": 20.0,
        "event loop": 20.0,
    }
    assert summary["top_functions_percent"][0] == ("_execute (aiosqlite/core.py:158)", 60.0)
    assert area_of("start (<frozen runpy>:88)") is None
    assert area_of("talk (data_plane/logic/handlers/chat.py:1)") == "handlers"


def test_profile_of_the_pinned_all_in_one_names_where_each_process_works(
    tmp_path: Path,
) -> None:
    summary = profile("sqlite", chat_workload(duration=2.0, warmup=1.0), tmp_path, PY_SPY)
    assert summary["result"]["acked"] > 0
    assert summary["result"]["failed"] == 0
    logic, gateway = summary["processes"]["logic"], summary["processes"]["gateway"]
    for process in (logic, gateway):
        assert process["cpu_us_per_unit"] > 0
        assert process["samples"] > 0
        assert "event loop" in process["thread_cpu_us_per_unit"]
    assert "message store" in logic["areas_percent"]
    assert "wire codec" in gateway["areas_percent"]
    assert (tmp_path / "chat-sqlite-logic.raw").exists()
    assert (tmp_path / "profile-chat-sqlite.json").exists()


def test_threads_show_the_loop_the_busiest_others_and_the_rest_summed() -> None:
    used = {"python/3": 0.5, "event loop": 2.0, "a/4": 0.1, "b/5": 0.2, "c/6": 0.05, "d/7": 0.05}
    assert busiest(used, shown=2) == {
        "event loop": 2.0,
        "python/3": 0.5,
        "b/5": 0.2,
        "3 more threads": pytest.approx(0.2),
    }
    assert busiest({"event loop": 1.0}) == {"event loop": 1.0}
