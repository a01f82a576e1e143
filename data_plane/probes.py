"""The HTTP port of a gateway or logic node: ``/metrics``, ``/healthz`` and ``/readyz``.

Served from a small thread (a ``ThreadingHTTPServer``), so neither a scrape nor a probe
ever runs on the event loop:

- ``/healthz`` answers 200 ``ok`` while the process runs (liveness: restart it when this
  stops answering);
- ``/readyz`` answers 200 ``ready`` when every readiness condition of the process holds,
  else 503 with one line per condition that does not (readiness: send it traffic only
  when 200). A gateway is ready when it is linked to at least one logic node that runs
  the login service and its last heartbeat reached the registry; a logic node when it
  listens for gateway links and its last heartbeat reached the registry;
- ``/metrics`` (and any other path, as before there were probes) is the Prometheus text
  exposition of the process's own registry.

The readiness callable runs on the server thread: it may only read plain attributes
the event loop sets (a bool, an ``anyio.Event``'s flag), which is safe under the GIL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Unmet = Callable[[], list[str]]
"""The readiness conditions that do not hold right now (empty: ready)."""


def _handler(registry: CollectorRegistry, unmet: Unmet) -> type[BaseHTTPRequestHandler]:
    class ProbeHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._answer(200, b"ok\n")
            elif path == "/readyz":
                missing = unmet()
                if missing:
                    self._answer(503, "".join(f"not ready: {m}\n" for m in missing).encode())
                else:
                    self._answer(200, b"ready\n")
            else:
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)

        def _answer(self, code: int, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape would drown the process's own log

    return ProbeHandler


def serve_probes(
    role: str, host: str, port: int, registry: CollectorRegistry, unmet: Unmet
) -> ThreadingHTTPServer:
    """Serve the three paths on ``host:port`` from a daemon thread; returns the server
    (``server_address`` has the bound port when ``port`` is 0)."""
    server = ThreadingHTTPServer((host, port), _handler(registry, unmet))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"{role}-probes", daemon=True)
    thread.start()
    bound = server.server_address[1]
    log.info("%s metrics and probes on http://%s:%d/ (metrics, healthz, readyz)", role, host, bound)
    return server
