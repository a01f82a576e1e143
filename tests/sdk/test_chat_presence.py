"""``cirno chat``'s presence marks and typing line, driven in-process on real processes."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import pytest

from cirno.chat import format_event, run
from cirno.harness import Cluster
from cirno_sdk import Client, ClientOptions, PresenceChanged, Typing
from tests.sdk.conftest import token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def test_presence_and_typing_lines() -> None:
    assert format_event(PresenceChanged("bob", True, 1)) == "● bob online"
    assert format_event(PresenceChanged("bob", False, 1)) == "○ bob offline"
    assert format_event(Typing("bob", "", False)) == "bob is typing…"
    assert format_event(Typing("bob", "g1", False)) == "bob is typing in #g1…"
    assert format_event(Typing("bob", "", True)) == "bob stopped typing"


async def _shown(out: io.StringIO, text: str, times: int = 1) -> None:
    for _ in range(500):
        if out.getvalue().count(text) >= times:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{text!r} not shown; output:\n{out.getvalue()}")


async def test_watch_marks_and_typing_line(cluster: Cluster) -> None:
    me, peer = f"una-{uuid.uuid4().hex[:6]}", f"vic-{uuid.uuid4().hex[:6]}"
    out = io.StringIO()
    step = asyncio.Queue[str]()

    async def lines() -> AsyncIterator[str]:
        while (line := await step.get()) != "/quit":
            yield line + "\n"
        yield "/quit\n"

    fast = ClientOptions(ack_interval=100)
    async with Client(cluster.ws_url, token(me), options=fast) as client:

        async def drive() -> None:
            step.put_nowait(f"/watch {peer}")
            await _shown(out, f"○ {peer} offline")
            async with Client(cluster.ws_url, token(peer), options=fast) as other:
                await _shown(out, f"● {peer} online")
                assert await other.typing(me) is True
                await _shown(out, f"{peer} is typing…")
                step.put_nowait(f"/typing @{peer}")
                typing = await _next_typing(other)
                assert typing == Typing(me, "", False)
            await _shown(out, f"○ {peer} offline", times=2)  # its last device left
            step.put_nowait("/quit")

        async with asyncio.timeout(30):
            code, _ = await asyncio.gather(run(client, lines(), out), drive())
        assert code == 0


async def _next_typing(client: Client) -> Typing:
    async for event in client.events():
        if isinstance(event, Typing):
            return event
    raise AssertionError("events ended")
