"""Row 7: TCP close frames with 300 different codes.

Before the fix each code became a ``cirno_gateway_closes_total`` series (65,536
possible, chosen by any client). Now codes outside cirno-im's own set count as
``other``. Bounds asserted: the gateway's series of that metric stay within the known
codes plus ``other`` and ``?``, and the gateway grows by less than ``GROWTH_BOUND``.
"""

from __future__ import annotations

import asyncio

import pytest

from cirno.harness import Cluster
from data_plane.transport.close import KNOWN_CLOSE_CODES, encode_close_payload
from data_plane.wire import Opcode, encode_frame
from tests.abuse.conftest import MIB, role_pid, rss, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

GROWTH_BOUND = 16 * MIB
CODES = range(3000, 3300)
SERIES = "cirno_gateway_closes_total{"
OTHER = 'cirno_gateway_closes_total{code="other"} '


def close_series(metrics: str) -> set[str]:
    return {line.split(" ")[0] for line in metrics.splitlines() if line.startswith(SERIES)}


def others(cluster: Cluster) -> float:
    for line in scrape(cluster, "gateway").splitlines():
        if line.startswith(OTHER):
            return float(line[len(OTHER) :])
    return 0.0


async def close_with(cluster: Cluster, code: int) -> None:
    """Connect over TCP, send a close frame with ``code`` and go."""
    _, writer = await asyncio.open_connection(*cluster.tcp_addr)
    writer.write(encode_frame(Opcode.CLOSE, encode_close_payload(code, "bye")))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def until_others(cluster: Cluster, count: float) -> None:
    """Wait (bounded) until the gateway counted ``count`` "other" closes: it counts a
    close when that connection's session ends, a moment after the frame arrives."""
    for _ in range(100):
        if others(cluster) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway counted {others(cluster)} other closes, not {count}")


async def test_client_chosen_close_codes_do_not_make_metric_series(cluster: Cluster) -> None:
    gateway = role_pid(cluster, "gateway")
    before, start = rss(gateway), others(cluster)
    for code in CODES:
        await close_with(cluster, code)
    await until_others(cluster, start + len(CODES))
    series = close_series(scrape(cluster, "gateway"))
    assert not any(f'code="{code}"' in name for code in CODES for name in series)
    assert len(series) <= len(KNOWN_CLOSE_CODES) + 2  # "other" and "?" besides them
    assert others(cluster) == start + len(CODES)
    assert rss(gateway) - before < GROWTH_BOUND


async def test_our_own_codes_keep_their_label(cluster: Cluster) -> None:
    start = others(cluster)
    await close_with(cluster, 1000)
    await close_with(cluster, 4999)
    await until_others(cluster, start + 1)
    assert 'cirno_gateway_closes_total{code="1000"}' in close_series(scrape(cluster, "gateway"))
    assert others(cluster) == start + 1
