"""A user's mistake ends in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from cirno.harness import free_port
from tests.cli.cli import assert_one_clear_line, cirno

NO_SECRETS = {"CIRNO_CLUSTER_SECRET": "", "CIRNO_ADMIN_TOKEN": ""}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/", "must be ws://host:port/ or tcp://host:port"),
        ("127.0.0.1:8000", "must be ws://host:port/ or tcp://host:port"),
        ("tcp://127.0.0.1", "needs a host and a port"),
        ("ws://[::1", "is malformed"),
    ],
)
def test_chat_rejects_a_url_it_cannot_dial(url: str, expected: str) -> None:
    run = cirno("chat", "--url", url, "--token", "x")
    assert_one_clear_line(run, "cirno chat:", expected, repr(url))


@pytest.mark.parametrize(
    ("role", "missing"),
    [
        ("control", "CIRNO_ADMIN_TOKEN, CIRNO_CLUSTER_SECRET"),
        ("logic", "CIRNO_CLUSTER_SECRET"),
        ("gateway", "CIRNO_CLUSTER_SECRET"),
    ],
)
def test_role_without_its_environment(role: str, missing: str) -> None:
    run = cirno(role, env=NO_SECRETS)
    assert_one_clear_line(run, f"cirno {role}: set {missing}", f"cirno {role} --help")


def test_role_with_a_malformed_variable() -> None:
    run = cirno("gateway", env={"CIRNO_CLUSTER_SECRET": "s", "CIRNO_GATEWAY_WS_PORT": "eighty"})
    assert_one_clear_line(run, "cirno gateway:", "'eighty'")


def test_up_with_a_malformed_port_variable() -> None:
    run = cirno("up", env={"CIRNO_GATEWAY_WS_PORT": "eighty"})
    assert run.code == 2 and "Traceback" not in run.err
    assert "argument --ws-port: invalid int value: 'eighty'" in run.err


def test_chat_says_connection_refused_at_once_and_retries() -> None:
    """Nothing listens: the first refusal is on stderr within seconds, then retries
    with growing delays; Ctrl-C ends it without a traceback."""
    port = free_port()
    command = [sys.executable, "-m", "cirno.cli", "chat", "--url", f"tcp://127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*command, "--token", "x"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        started = time.monotonic()
        first = proc.stderr.readline()
        assert time.monotonic() - started < 10, "the first refusal took too long"
        second = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=10)
    for line in (first, second):
        assert f"connection refused (nothing listens) at 127.0.0.1:{port}" in line
        assert "retrying in" in line
    assert proc.returncode == 130
    assert "Traceback" not in "".join(rest)
