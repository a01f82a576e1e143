"""Scraping the metrics endpoints of the data-plane processes for the console's charts.

:class:`MetricsSampler` is pull-driven: it scrapes only when the console asks for the
charts and the last scrape is at least ``min_interval`` old, so there is no background
task, and several open consoles share one history (and one scrape per interval) instead
of each multiplying the load on the processes. Targets are the metrics URLs given in
``CIRNO_METRICS_TARGETS`` (``cirno up`` sets them); a target that does not answer within
``timeout`` is reported down and left out of the sums.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx

from control_plane.console.metrics import History, Totals, combine, parse_totals
from control_plane.settings import Clock

DEFAULT_MIN_INTERVAL = 1.0
DEFAULT_TIMEOUT = 1.0
MAX_METRICS_BYTES = 4 * 1024 * 1024
"""A metrics page larger than this is refused (ours are a few KiB)."""


@dataclass(frozen=True, slots=True)
class TargetState:
    """How the last scrape of one metrics URL went."""

    url: str
    up: bool
    error: str | None = None


class MetricsSampler:
    """Scrapes ``targets`` at most once per ``min_interval`` and keeps the chart history.

    With no targets configured, the connections come from ``fallback_connections`` (the
    node registry's heartbeats) and the rates stay zero: nothing else reports them.
    """

    def __init__(
        self,
        targets: Sequence[str],
        clock: Clock,
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.targets = tuple(targets)
        self.clock = clock
        self.min_interval = min_interval
        self.timeout = timeout
        self.history = History()
        self.states: tuple[TargetState, ...] = tuple(TargetState(url, False) for url in targets)
        self._lock: anyio.Lock | None = None

    async def sample(self, fallback_connections: Callable[[], Awaitable[float]]) -> History:
        """Scrape now unless the last scrape is recent; returns the (shared) history."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            now = self.clock()
            last = self.history.last
            if last is not None and now - last[0] < self.min_interval:
                return self.history
            if self.targets:
                totals = combine(await self._scrape_all())
            else:
                totals = Totals(connections=await fallback_connections())
            self.history.observe(now, totals)
            return self.history

    async def _scrape_all(self) -> list[Totals]:
        """Scrape every target concurrently; the totals of those that answered."""
        found: list[Totals | None] = [None] * len(self.targets)
        states: list[TargetState] = [TargetState(url, False) for url in self.targets]
        async with httpx.AsyncClient(timeout=self.timeout) as client:

            async def one(index: int, url: str) -> None:
                try:
                    answer = await client.get(url)
                    answer.raise_for_status()
                    if len(answer.content) > MAX_METRICS_BYTES:
                        raise ValueError(f"metrics page over {MAX_METRICS_BYTES} bytes")
                    found[index] = parse_totals([answer.text])
                except (httpx.HTTPError, ValueError) as exc:
                    states[index] = TargetState(url, False, f"{type(exc).__name__}: {exc}")
                    return
                states[index] = TargetState(url, True)

            async with anyio.create_task_group() as tg:
                for index, url in enumerate(self.targets):
                    tg.start_soon(one, index, url)
        self.states = tuple(states)
        return [totals for totals in found if totals is not None]
