"""The README's first hour, run as written against a ``cirno up`` on moved ports.

The README marks its shell blocks with ``<!-- first-hour: NAME -->``. The ``start``
block (``make up``) is what this test replaces by ``cirno up`` (what ``make up`` runs
once the venv exists), with every port moved by its documented variable; the other
blocks run in ``bash`` with those variables exported, exactly as a user pastes them,
except that ``.venv/bin/cirno`` is this interpreter's ``-m cirno.cli``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cirno.harness import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PORT_VARIABLES = (
    "CIRNO_CONTROL_PORT",
    "CIRNO_GATEWAY_WS_PORT",
    "CIRNO_GATEWAY_TCP_PORT",
    "CIRNO_LOGIC_PORT",
    "CIRNO_GATEWAY_METRICS_PORT",
    "CIRNO_LOGIC_METRICS_PORT",
)
CIRNO = f"{shlex.quote(sys.executable)} -m cirno.cli"


def readme_blocks() -> dict[str, list[str]]:
    """The marked blocks of the README, each as its commands (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    blocks: dict[str, list[str]] = {}
    for name, body in re.findall(r"<!-- first-hour: (\w+) -->\n```sh\n(.*?)```", text, re.S):
        commands = body.replace("\\\n", " ").splitlines()
        blocks[name] = [" ".join(c.split()) for c in commands if c.strip()]
    return blocks


def _as_run_here(command: str) -> str:
    return command.replace(".venv/bin/cirno", CIRNO)


@contextmanager
def cirno_up(tmp: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``cirno up`` with ``env`` (ports from variables only, no flags) until it is up."""
    log_path = tmp / "up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cirno.cli", "up", "--data-dir", str(tmp / "data")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "cirno-im is up" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()


def test_readme_has_one_tenant_create() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(re.findall(r"-X POST \S*/v1/tenants ", text)) == 1


def test_first_hour_as_written(tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert blocks["start"][-1] == "make up"
    assert "$(BIN)/cirno up" in (ROOT / "Makefile").read_text()
    admin = blocks["start"][0].removeprefix("export CIRNO_ADMIN_TOKEN=")
    env = {name: value for name, value in os.environ.items() if not name.startswith("CIRNO_")}
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    env["CIRNO_ADMIN_TOKEN"] = admin
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(ROOT))
    work = tmp_path / "terminal"
    work.mkdir()
    with cirno_up(tmp_path, env):
        _second_terminal(blocks, env, work)
        _two_chat_terminals(blocks["chat"], env, work)


def _second_terminal(blocks: dict[str, list[str]], env: dict[str, str], work: Path) -> None:
    """The tenant and login blocks in one shell; each command must succeed."""
    script = ["set -uo pipefail"]
    for command in blocks["tenant"] + blocks["login"]:
        script.append(
            f"{_as_run_here(command)} || {{ echo FAILED: {shlex.quote(command)}; exit 1; }}"
        )
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=work,
        env={name: value for name, value in env.items() if name != "CIRNO_ADMIN_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done
    assert "Traceback" not in done.stderr
    tenant = json.loads((work / "acme.json").read_text())
    assert tenant["id"] == "acme" and tenant["api_key"]
    ws_port = env["CIRNO_GATEWAY_WS_PORT"]
    assert f"connected to ws://127.0.0.1:{ws_port}/ as alice (device terminal)" in done.stdout


def _two_chat_terminals(chat: list[str], env: dict[str, str], work: Path) -> None:
    """Bob listens over TCP; alice says hello and her input ends; bob sees it."""
    alice_command, bob_command = (_as_run_here(c) for c in chat)
    bob = subprocess.Popen(
        ["bash", "-c", bob_command],
        cwd=work,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert bob.stdin is not None and bob.stdout is not None
    try:
        tcp_port = env["CIRNO_GATEWAY_TCP_PORT"]
        assert f"connected to tcp://127.0.0.1:{tcp_port} as bob" in bob.stdout.readline()
        alice = subprocess.run(
            ["bash", "-c", alice_command],
            cwd=work,
            env=env,
            input="@bob hello from the readme\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert alice.returncode == 0, alice
        seen = []
        for _ in range(5):  # the help line, then the message (readline blocks: stop at it)
            seen.append(bob.stdout.readline())
            if "alice → you: hello from the readme" in seen[-1]:
                break
        assert "alice → you: hello from the readme" in seen[-1], seen
        bob.stdin.write("/quit\n")
        bob.stdin.flush()
        assert bob.wait(timeout=15) == 0
    finally:
        if bob.poll() is None:
            bob.kill()
        _, err = bob.communicate(timeout=10)
    assert "Traceback" not in err
