"""A packet connection without a socket, for tests of what is sent and when it closes."""

from __future__ import annotations

from collections.abc import Callable

from data_plane.transport.connection import PacketConnection


class Capture(PacketConnection):
    """Keeps every packet sent (``sent``); nothing is written anywhere, reading never
    pauses and a close only marks it closed. Needs a running event loop; ``clock``
    stamps its ``last_activity`` as a transport's clock would."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self.sent: list[bytes] = []

    def send(self, packet: bytes) -> bool:
        self.sent.append(packet)
        return True

    def _write_packets(self, packets: list[bytes]) -> None:
        self.sent.extend(packets)

    def _write_buffer_size(self) -> int:
        return 0

    def _pause_reading(self) -> None:
        pass

    def _resume_reading(self) -> None:
        pass

    def _send_close_and_disconnect(self, code: int, reason: str) -> None:
        pass
