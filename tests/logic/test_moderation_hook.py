"""The moderation hook client and the gate's size rule, against a real HTTP hook on a
loopback port: verdicts parsed (and everything else refused), the request signed with
the tenant's secret (verified by ``standardwebhooks``), the answer read no further
than its cap, the per-node call slots bounding concurrency within the deadline, and a
replacement too large for a client packet counted as a failed answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from standardwebhooks import Webhook

from cirno.harness import free_port
from data_plane.cluster.tenants import ModerationHook
from data_plane.logic.handlers.chat import message_push
from data_plane.logic.moderation.gate import _apply
from data_plane.logic.moderation.hook import (
    MAX_REASON_CHARS,
    Action,
    HookClient,
    HookFailed,
    Verdict,
    parse_answer,
)
from data_plane.logic.push_size import PushOf
from data_plane.wire import Command, pb
from tests.http_receiver import HttpReceiver

pytestmark = pytest.mark.anyio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
async def client() -> AsyncIterator[HookClient]:
    hooks = HookClient(concurrency=1, max_answer_bytes=1000)
    yield hooks
    await hooks.aclose()


def hook_at(url: str, deadline_ms: int = 2000) -> ModerationHook:
    return ModerationHook(url=url, secret=SECRET, deadline_ms=deadline_ms, fail_open=False)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"action": "allow"}', Verdict(Action.ALLOW)),
        (b'{"action": "reject"}', Verdict(Action.REJECT)),
        (b'{"action": "reject", "reason": "spam"}', Verdict(Action.REJECT, reason="spam")),
        (b'{"action": "replace", "body": ""}', Verdict(Action.REPLACE, body="")),
        (b'{"action": "replace", "body": "***"}', Verdict(Action.REPLACE, body="***")),
    ],
)
def test_verdicts(content: bytes, expected: Verdict) -> None:
    assert parse_answer(200, content) == expected


def test_a_long_reason_is_cut() -> None:
    answer = json.dumps({"action": "reject", "reason": "x" * 10_000}).encode()
    assert parse_answer(204, answer).reason == "x" * MAX_REASON_CHARS


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (500, b'{"action": "allow"}'),
        (302, b'{"action": "allow"}'),
        (200, b""),
        (200, b"allow"),
        (200, b"\xff\xfe"),
        (200, b'["allow"]'),
        (200, b'{"action": "maybe"}'),
        (200, b'{"verdict": "allow"}'),
        (200, b'{"action": "replace"}'),
        (200, b'{"action": "replace", "body": 42}'),
        (200, b'{"action": "reject", "reason": ["a"]}'),
    ],
)
def test_anything_else_is_a_failed_answer(status: int, content: bytes) -> None:
    with pytest.raises(HookFailed):
        parse_answer(status, content)


async def test_the_request_is_signed_and_the_verdict_returned(
    receiver: HttpReceiver, client: HookClient
) -> None:
    receiver.answer_body = lambda request: b'{"action": "replace", "body": "clean"}'
    verdict = await client.ask(hook_at(receiver.url + "/m"), {"sender": "alice", "body": "dirty"})
    assert verdict == Verdict(Action.REPLACE, body="clean")
    (request,) = receiver.requests()
    assert Webhook(SECRET).verify(request.body, request.headers) == {
        "sender": "alice",
        "body": "dirty",
    }


async def test_an_answer_over_the_cap_is_not_read_on(
    receiver: HttpReceiver, client: HookClient
) -> None:
    receiver.answer_body = lambda request: json.dumps(
        {"action": "allow", "pad": "x" * 5000}
    ).encode()
    with pytest.raises(HookFailed, match="exceeds 1000 bytes"):
        await client.ask(hook_at(receiver.url), {})


async def test_down_and_slow_hooks_fail_within_the_deadline(
    receiver: HttpReceiver, client: HookClient
) -> None:
    with pytest.raises(HookFailed):
        await client.ask(hook_at(f"http://127.0.0.1:{free_port()}/"), {})
    receiver.delay = 1.0
    with anyio.fail_after(0.9), pytest.raises(HookFailed, match="no answer within 100 ms"):
        await client.ask(hook_at(receiver.url, deadline_ms=100), {})


async def test_calls_wait_for_a_slot_within_their_deadline(receiver: HttpReceiver) -> None:
    """One slot: the second of two concurrent calls waits for the first (0.5 s), then
    cannot finish its own 0.5 s within its 0.8 s deadline."""
    receiver.delay = 0.5
    receiver.answer_body = lambda request: b'{"action": "allow"}'
    outcomes: list[str] = []
    single = HookClient(concurrency=1)

    async def one() -> None:
        try:
            await single.ask(hook_at(receiver.url, deadline_ms=800), {})
            outcomes.append("answered")
        except HookFailed:
            outcomes.append("failed")

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
    finally:
        await single.aclose()
    assert outcomes == ["answered", "failed"]


def test_a_replacement_too_large_for_a_client_packet_is_a_failed_answer() -> None:
    req = pb.MessageReq(type=1, body="short", client_msg_id="c1")

    def push_of(r: pb.MessageReq) -> PushOf:
        return lambda result, seq: message_push(Command.CHAT_USER_TALK, r, "alice", "bob", result)

    fits = _apply(Verdict(Action.REPLACE, body="y" * 100), req, 1024, push_of)
    assert fits is not None and fits.body == "y" * 100 and req.body == "short"
    with pytest.raises(HookFailed, match="exceeds the 1024-byte limit"):
        _apply(Verdict(Action.REPLACE, body="y" * 2000), req, 1024, push_of)
    assert _apply(Verdict(Action.REJECT), req, 1024, push_of) is None
    assert _apply(Verdict(Action.ALLOW), req, 1024, push_of) is req
