"""Reconnect targets of the SDK: a fixed URL, a rotating list, a resolver, and
``route_resolver`` against a stand-in for the control plane's ``GET /v1/route``."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from cirno_sdk import ConnectFailed, route_resolver
from cirno_sdk.targets import Targets

pytestmark = pytest.mark.anyio

GW1, GW2, GW3 = "ws://127.0.0.1:1/", "ws://127.0.0.1:2/", "ws://127.0.0.1:3/"


async def test_a_fixed_url_never_changes() -> None:
    targets = Targets(GW1)
    assert await targets.next_url() == GW1
    targets.failed()
    assert await targets.next_url() == GW1


async def test_a_list_rotates_on_each_failure_and_stays_otherwise() -> None:
    targets = Targets([GW1, GW2, GW3])
    assert [await targets.next_url() for _ in range(2)] == [GW1, GW1]
    seen = []
    for _ in range(4):
        targets.failed()
        seen.append(await targets.next_url())
    assert seen == [GW2, GW3, GW1, GW2]
    assert "any of" in targets.description


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ValueError):
        Targets([])


async def test_a_failing_resolver_falls_back_to_its_last_answer() -> None:
    answers: list[str | Exception] = [RuntimeError("down"), GW2, RuntimeError("down again")]

    async def resolver() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    targets = Targets(resolver)
    with pytest.raises(ConnectFailed):
        await targets.next_url()
    assert await targets.next_url() == GW2
    assert await targets.next_url() == GW2
    assert targets.last == GW2


def control_plane(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.MockTransport(record), seen


def route_answer(*urls: str) -> httpx.Response:
    gateways = [
        {"id": f"gw-{i}", "ws_url": url, "tcp_addr": f"127.0.0.1:{i}", "zone": "z1"}
        for i, url in enumerate(urls, start=1)
    ]
    return httpx.Response(200, text=json.dumps({"gateways": gateways, "fallback": False}))


async def test_route_resolver_asks_with_the_token_and_answers_the_first_gateway() -> None:
    transport, seen = control_plane(lambda _: route_answer(GW1, GW2))
    resolve = route_resolver(
        "http://cp.invalid/", "tok", platform="ios", version="1.2.0", transport=transport
    )
    assert await resolve() == GW1
    request = seen[0]
    assert request.url.path == "/v1/route"
    assert dict(request.url.params) == {"token": "tok", "platform": "ios", "version": "1.2.0"}


async def test_route_resolver_moves_off_the_gateway_it_gave_last_time() -> None:
    transport, _ = control_plane(lambda _: route_answer(GW1, GW2))
    resolve = route_resolver("http://cp.invalid", "tok", transport=transport)
    assert [await resolve() for _ in range(3)] == [GW1, GW2, GW1]


async def test_route_resolver_keeps_a_single_gateway() -> None:
    transport, _ = control_plane(lambda _: route_answer(GW3))
    resolve = route_resolver("http://cp.invalid", "tok", transport=transport)
    assert [await resolve() for _ in range(2)] == [GW3, GW3]


async def test_route_resolver_falls_back_to_the_last_known_gateway() -> None:
    answers = [route_answer(GW1), httpx.Response(503, text="{}"), httpx.Response(200, text="[]")]
    transport, _ = control_plane(lambda _: answers.pop(0))
    resolve = route_resolver("http://cp.invalid", "tok", transport=transport)
    assert [await resolve() for _ in range(3)] == [GW1, GW1, GW1]


async def test_route_resolver_without_any_answer_fails_the_attempt() -> None:
    transport, _ = control_plane(lambda _: httpx.Response(401, text='{"detail": "bad"}'))
    resolve = route_resolver("http://cp.invalid", "tok", transport=transport)
    with pytest.raises(ConnectFailed):
        await resolve()


async def test_route_resolver_takes_a_token_callable() -> None:
    transport, seen = control_plane(lambda _: route_answer(GW2))

    async def fresh_token() -> str:
        return "fresh"

    resolve = route_resolver("http://cp.invalid", fresh_token, transport=transport)
    assert await resolve() == GW2
    assert seen[0].url.params["token"] == "fresh"
