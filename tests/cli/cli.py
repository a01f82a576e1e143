"""Running ``cirno`` the way a user does: a subprocess, its exit status and its output."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Run:
    """What one ``cirno`` command did."""

    code: int
    out: str
    err: str


def cirno(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> Run:
    """``python -m cirno.cli ARGS`` with stdin at end of input; ``env`` replaces the
    variables named in it (an empty value removes the variable)."""
    full = dict(os.environ)
    for name, value in (env or {}).items():
        if value:
            full[name] = value
        else:
            full.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "cirno.cli", *args],
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_one_clear_line(run: Run, *expected: str) -> None:
    """A user's mistake: exit status 2, no traceback, one stderr line saying it."""
    assert run.code == 2, run
    assert "Traceback" not in run.err + run.out, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run
    for text in expected:
        assert text in lines[0], run
