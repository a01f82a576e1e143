"""A flooding client as its own process (``python -m tests.abuse.flooder``), so its
work never shares an event loop or an interpreter with the bystander it is measured
against.

It logs in as one account, pipelines ``--batch`` talks of 4 KB without reading, waits
for the gateway to close it, and does it again until stdin closes or ``--max-bytes``
are sent; then it prints one JSON line: bytes sent, the close codes and reasons, and
the statuses of the answers it received.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import anyio

from cirno.harness import RawClient
from data_plane.wire import Command, LogicPacket, Status, pb


class Flood:
    def __init__(self, host: str, port: int, token: str, dest: str, batch: int) -> None:
        self.addr = (host, port)
        self.token = token
        self.batch = batch
        self.packet = LogicPacket.request(
            Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="x" * 4000), dest=dest
        ).encode()
        self.sent = 0
        self.closes: list[tuple[int, str]] = []
        self.statuses: list[int] = []
        self.stopped = threading.Event()

    async def run(self, max_bytes: int) -> None:
        while self.sent < max_bytes and not self.stopped.is_set():
            client = await RawClient.tcp(self.addr)
            try:
                await self._once(client)
            finally:
                client.close()

    async def _once(self, client: RawClient) -> None:
        answer = await client.login(self.token)
        if answer.status != Status.SUCCESS:  # logins of this IP are limited too
            await client.closed()
            return
        for _ in range(self.batch):
            if not client.conn.send(self.packet):
                break
            self.sent += len(self.packet)
        self.closes.append(await client.closed(timeout=10))
        self.statuses += [p.status for p in client._pending if isinstance(p, LogicPacket)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("token")
    parser.add_argument("dest")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--max-bytes", type=int, default=48 * 1024 * 1024)
    args = parser.parse_args()
    flood = Flood(args.host, args.port, args.token, args.dest, args.batch)

    # Stop after the current connection once the test closes our stdin.
    def wait_for_eof() -> None:
        sys.stdin.read()
        flood.stopped.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print("flooding", flush=True)
    anyio.run(flood.run, args.max_bytes)
    print(json.dumps({"sent": flood.sent, "closes": flood.closes, "statuses": flood.statuses}))


if __name__ == "__main__":
    main()
