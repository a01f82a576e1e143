"""A TCP proxy that can be cut and restored, to make a real server unreachable.

Used by ``cirno verify --faults mysql-cut`` (MySQL behind it). It runs its own event
loop in a thread, so it is independent of the caller's loop. ``cut()`` aborts every
proxied connection (no FIN: as a network cut) and stops listening, so new connections
are refused at once, and returns how many connections it cut; ``restore()`` listens
again on the same port.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from cirno.harness.ports import free_port


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port: int = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.last_cut = 0
        self._thread.start()
        self.restore()

    def _call(self, coro: object) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.last_cut = len(self._writers) // 2
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def cut(self) -> int:
        """Drop every connection and refuse new ones; the number of connections cut."""
        self._call(self._cut())
        return self.last_cut

    def restore(self) -> None:
        """Accept connections again."""
        self._call(self._listen())

    def close(self) -> None:
        """Stop the proxy and its thread."""
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
