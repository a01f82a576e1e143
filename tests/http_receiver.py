"""A real HTTP receiver on a free loopback port, for webhook and push tests.

It records every request (path, headers, body) and answers with the status and body the
test sets (``answer``, ``answer_body``) after ``delay`` seconds, can be stopped (its port
refuses connections) and started again on the same port. It runs in a thread of the test
process: the logic nodes under test are separate processes that reach it over TCP, as
they would reach a tenant's backend.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio

from cirno.harness import free_port


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class HttpReceiver:
    """Records requests; ``answer`` picks each answer's status (see the module doc)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.answer: Callable[[Received], int] = lambda request: 200
        self.answer_body: Callable[[Received], bytes] = lambda request: b"{}"
        """The body of each answer (a moderation hook's verdict)."""
        self.delay = 0.0
        """Seconds to wait before answering (a hook slower than its deadline)."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The receiver's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        """Listen (again) on ``port``."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                probe = Received("POST", self.path, headers, body, 0)
                status = receiver.answer(probe)
                content = receiver.answer_body(probe)
                with receiver._lock:
                    receiver.received.append(Received("POST", self.path, headers, body, status))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the caller gave up (a deadline test)
                    self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def requests(self, status: int | None = None) -> list[Received]:
        """What was received so far (only those answered ``status``, when given)."""
        with self._lock:
            found = list(self.received)
        return [r for r in found if status is None or r.status == status]

    async def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        """Poll until ``condition(requests())`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests()
            if condition(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver condition not met; got {len(found)} requests")
            await anyio.sleep(0.05)
