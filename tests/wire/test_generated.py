"""The committed protocol_pb2.py / .pyi are what protocol.proto generates."""

from __future__ import annotations

import shutil
from pathlib import Path

from data_plane.wire import generate


def test_committed_modules_are_current() -> None:
    stale = generate.stale_files()
    assert stale == [], f"stale {stale}: run `python -m data_plane.wire.generate`"


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    wire = tmp_path / "data_plane" / "wire"
    wire.mkdir(parents=True)
    shutil.copyfile(generate.REPO_ROOT / generate.PROTO, tmp_path / generate.PROTO)
    shutil.copyfile(generate.REPO_ROOT / generate.GENERATED[1], tmp_path / generate.GENERATED[1])
    (tmp_path / generate.GENERATED[0]).write_text("# edited by hand\n")
    assert generate.stale_files(tmp_path) == [generate.GENERATED[0]]
    generate.write(tmp_path)
    assert generate.stale_files(tmp_path) == []
