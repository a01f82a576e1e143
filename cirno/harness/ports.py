"""Free ports for test and benchmark processes, chosen outside the kernel's ephemeral range.

A port found by binding to port 0 comes from the ephemeral range (32768–60999 on Linux),
the same range the kernel hands to every outgoing connection. Between choosing such a port
and the server binding it, a client socket of any process (a MySQL or Redis connection, a
link between nodes) may take it, and the server fails with "address already in use". Ports
here come from 10000–22767 instead, which no outgoing connection receives, and whose Redis
Cluster bus port (+10000) is outside that range too. Within one process no port is handed
out twice.
"""

from __future__ import annotations

import random
import socket

LOW = 10000
HIGH = 22767  # + 10000 (a Redis Cluster bus port) stays below the ephemeral range

_given: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and is not ephemeral."""
    while True:
        port = random.randint(LOW, HIGH)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port


def closed_port_url(path: str = "") -> str:
    """An ``http://`` URL on a port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}{path}"
