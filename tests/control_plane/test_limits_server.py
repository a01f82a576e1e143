"""Control-plane limits over a real server: ``python -m control_plane`` on a free port.

Issue 12, rows 3, 5 and 6: a huge body with a bogus key, JSON that cannot be encoded
back (``NaN``, ``Infinity``, ``1e400``, lone surrogates), half-sent requests, and more
connections than the server serves. Every request goes over a raw or httpx socket to the
uvicorn process that ``cirno control`` runs; memory is the server's own VmRSS, and the
log is the server's own stderr.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cirno.harness.ports import free_port
from control_plane.migrate import PROJECT_ROOT
from control_plane.settings import DEFAULT_MAX_BODY_BYTES

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer e2e-admin"}
BOGUS_KEY = {"X-Api-Key": "not-a-key"}
JSON = {"Content-Type": "application/json"}
RSS_GROWTH_BOUND = 20 * 1024 * 1024
"""What refusing a 100 MB body may cost the server (bytes of resident memory)."""
SMALL_ANSWER = 2048
"""An error answer is at most this long, whatever the request held."""


@dataclass
class Served:
    """A running control plane: its base URL, address, process and log file."""

    base: str
    address: tuple[str, int]
    process: subprocess.Popen[bytes]
    log: Path

    def rss(self) -> int:
        """The server process's resident set size, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/PID/status")


@contextmanager
def serve(directory: Path, **env: str) -> Iterator[Served]:
    """``python -m control_plane`` with ``env``, its stderr in ``directory/server.log``."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "CIRNO_DATABASE_URL": f"sqlite:///{directory}/control.db",
        "CIRNO_ADMIN_TOKEN": "e2e-admin",
        "CIRNO_CLUSTER_SECRET": "e2e-cluster",
        "CIRNO_CONTROL_PORT": str(port),
        **env,
    }
    log = directory / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane"], cwd=directory, env=environment, stderr=stderr
        )
    served = Served(f"http://127.0.0.1:{port}", ("127.0.0.1", port), process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{served.base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the control plane exited"
                assert time.monotonic() < deadline, "the control plane did not start"
                time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A control plane with the default limits and a tenant ``acme``."""
    with serve(tmp_path_factory.mktemp("limits")) as running:
        created = httpx.post(
            f"{running.base}/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN
        )
        assert created.status_code == 201
        yield running


def read_answer(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection (or the deadline)."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received


def stream_body(
    address: tuple[str, int], head: bytes, chunk: bytes, total: int
) -> tuple[bytes, int]:
    """Send ``head`` then up to ``total`` bytes of ``chunk``s, stopping as soon as the
    server answers or closes; returns the answer and how many body bytes were sent."""
    sent = 0
    with socket.create_connection(address) as sock:
        sock.sendall(head)
        deadline = time.monotonic() + 60
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            assert time.monotonic() < deadline, "the server neither answered nor closed"
        return read_answer(sock, time.monotonic() + 10), sent


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer.split(b" ", 2)[1])


def token_head(extra: bytes) -> bytes:
    return (
        b"POST /v1/tenants/acme/tokens HTTP/1.1\r\nHost: cp\r\n"
        b"X-Api-Key: not-a-key\r\nContent-Type: application/json\r\n" + extra + b"\r\n"
    )


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 104857600\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["content-length", "chunked"],
)
def test_a_100_mb_body_with_a_bogus_key_is_refused_small_and_cheap(
    server: Served, framing: bytes
) -> None:
    """Row 3: 413 with a small answer, and the server's memory barely moves."""
    total = 100 * 1024 * 1024
    piece = b'{"account":"' + b"x" * (64 * 1024 - 12)
    if framing.startswith(b"Transfer-Encoding"):
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    else:
        chunk = piece
    before = server.rss()
    answer, sent = stream_body(server.address, token_head(framing), chunk, total)

    assert status_of(answer) == 413
    assert len(answer) < SMALL_ANSWER
    assert b"larger than 1048576 bytes" in answer
    assert sent < total, "the server read the whole body before refusing it"
    assert server.rss() - before < RSS_GROWTH_BOUND


def test_a_body_up_to_the_cap_is_served_one_byte_more_is_not(server: Served) -> None:
    """The cap is exactly ``CIRNO_CONTROL_MAX_BODY`` (whitespace pads a valid body)."""
    body = b'{"account":"alice"}'
    headers = {**ADMIN, **JSON}
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for size, expected in [
            (DEFAULT_MAX_BODY_BYTES - 1, 201),
            (DEFAULT_MAX_BODY_BYTES, 201),
            (DEFAULT_MAX_BODY_BYTES + 1, 413),
        ]:
            padded = body + b" " * (size - len(body))
            answer = client.post("/v1/tenants/acme/tokens", content=padded, headers=headers)
            assert answer.status_code == expected, answer.text
        # Chunked (no Content-Length) just under the cap is counted and served too.
        under = body + b" " * (DEFAULT_MAX_BODY_BYTES - len(body))
        pieces = iter([under[i : i + 65536] for i in range(0, len(under), 65536)])
        answer = client.post("/v1/tenants/acme/tokens", content=pieces, headers=headers)
        assert answer.status_code == 201, answer.text


NOT_STRICT = {
    "NaN": (b'{"account": NaN}', "NaN is not a JSON number"),
    "Infinity": (b'{"account": "a", "ttl": Infinity}', "Infinity is not a JSON number"),
    "-Infinity": (b'{"account": -Infinity}', "-Infinity is not a JSON number"),
    "1e400": (b'{"account": "a", "ttl": 1e400}', "the number 1e400 is out of range"),
    "lone surrogate": (b'{"account": "\\ud800"}', "a string has a lone surrogate"),
    "surrogate bytes": (b'{"account": "\xed\xa0\x80"}', "The body is not UTF-8"),
}
CREDENTIALS = {"none": {}, "bogus key": BOGUS_KEY, "admin": ADMIN}


@pytest.mark.parametrize("credential", CREDENTIALS.values(), ids=list(CREDENTIALS))
@pytest.mark.parametrize(("body", "reason"), NOT_STRICT.values(), ids=list(NOT_STRICT))
def test_json_that_cannot_be_encoded_back_is_400_without_a_traceback(
    server: Served, credential: dict[str, str], body: bytes, reason: str
) -> None:
    """Row 5: 400 with the reason, never a 500, with or without a credential."""
    headers = {**credential, **JSON}
    for path in ("/v1/tenants/acme/tokens", "/v1/regions"):
        answer = httpx.post(f"{server.base}{path}", content=body, headers=headers, timeout=10)
        assert answer.status_code == 400, answer.text
        assert reason in answer.json()["detail"]
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log


def test_a_422_never_echoes_a_large_input(server: Served) -> None:
    """The 422 keeps FastAPI's shape but stays small whatever the input held."""
    cases = [
        ("/v1/tenants/acme/tokens", {"account": "x" * 900_000}, BOGUS_KEY),
        ("/v1/tenants/acme/tokens", {"account": "ok", "k" * 500_000: 1}, BOGUS_KEY),
        ("/v1/regions", {"id": "r", "name": "R", "countries": ["!!"] * 100_000}, ADMIN),
        ("/v1/tenants/acme/tokens", ["a"] * 200_000, ADMIN),
    ]
    for path, body, credential in cases:
        encoded = json.dumps(body).encode()
        assert len(encoded) <= DEFAULT_MAX_BODY_BYTES
        answer = httpx.post(
            f"{server.base}{path}", content=encoded, headers={**credential, **JSON}, timeout=10
        )
        assert answer.status_code == 422, answer.text[:300]
        assert len(answer.content) < SMALL_ANSWER
        errors = answer.json()["detail"]
        assert errors and all({"type", "loc", "msg"} <= set(error) for error in errors)
    small = httpx.post(
        f"{server.base}/v1/tenants/acme/tokens", json={"account": 7}, headers=BOGUS_KEY
    )
    assert small.status_code == 422
    assert small.json()["detail"][0]["input"] == 7, "a small input is still echoed"


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A control plane with one-second header and body deadlines."""
    env = {"CIRNO_CONTROL_HEADER_TIMEOUT": "1", "CIRNO_CONTROL_BODY_TIMEOUT": "1"}
    with serve(tmp_path_factory.mktemp("impatient"), **env) as running:
        yield running


HALF_SENT = {
    "nothing": b"",
    "half a request line": b"POST /v1/tenants HT",
    "half the headers": b"POST /v1/tenants HTTP/1.1\r\nHost: cp\r\nContent-Type: appl",
    "half the body": (
        b"POST /v1/tenants HTTP/1.1\r\nHost: cp\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer e2e-admin\r\nContent-Length: 100\r\n\r\n"
        b'{"id": "half", "na'
    ),
    "half a chunked body": (
        b"POST /v1/tenants HTTP/1.1\r\nHost: cp\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"id"\r\n'
    ),
}


@pytest.mark.parametrize("sent", HALF_SENT.values(), ids=list(HALF_SENT))
def test_half_sent_requests_are_closed_within_the_deadline(impatient: Served, sent: bytes) -> None:
    """Row 6: 100 stalled connections are all answered 408 and closed in about a second."""
    sockets = [socket.create_connection(impatient.address) for _ in range(100)]
    try:
        started = time.monotonic()
        for sock in sockets:
            if sent:
                sock.sendall(sent)
        deadline = started + 1 + 5  # the deadline plus slack for a loaded machine
        answers = [read_answer(sock, deadline) for sock in sockets]
        assert time.monotonic() < deadline, "a stalled connection outlived its deadline"
    finally:
        for sock in sockets:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 408 Request Timeout") for answer in answers)
    assert "Traceback" not in impatient.log.read_text(errors="replace")
    # The server still serves, and an answered keep-alive request is not cut short.
    with httpx.Client(base_url=impatient.base) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("piece", [70_000, 4096], ids=["one write", "trickled"])
def test_oversized_headers_are_answered_431(impatient: Served, piece: int) -> None:
    """httptools has no header limit of its own; the protocol counts header bytes,
    whether they come in one read or many."""
    head = b"GET /healthz HTTP/1.1\r\nHost: cp\r\nX-Pad: "
    answer, _sent = stream_body(impatient.address, head, b"p" * piece, 200_000)
    assert status_of(answer) == 431


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A control plane serving at most three connections at once."""
    env = {"CIRNO_CONTROL_MAX_CONNECTIONS": "3", "CIRNO_CONTROL_HEADER_TIMEOUT": "60"}
    with serve(tmp_path_factory.mktemp("capped"), **env) as running:
        yield running


def test_beyond_the_connection_cap_requests_get_503_and_a_close(capped: Served) -> None:
    """Three connections are served; a request on a fourth is answered 503 and closed;
    once one of the three goes, a new connection is served again."""
    request = b"GET /healthz HTTP/1.1\r\nHost: cp\r\n\r\n"
    held = [socket.create_connection(capped.address) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(request)
            assert status_of(sock.recv(65536)) == 200
        with socket.create_connection(capped.address) as extra:
            extra.sendall(request)
            answer = read_answer(extra, time.monotonic() + 10)
        assert status_of(answer) == 503
        assert b"connection: close" in answer.lower()
    finally:
        held.pop().close()
    try:
        deadline = time.monotonic() + 10
        while True:  # the server notices the closed connection asynchronously
            status = httpx.get(f"{capped.base}/healthz", timeout=5).status_code
            if status == 200:
                break
            assert status == 503
            assert time.monotonic() < deadline, "the freed slot was never reused"
            time.sleep(0.05)  # poll interval while the server processes the close
    finally:
        for sock in held:
            sock.close()
