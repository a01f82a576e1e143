"""The SDK against real ``cirno up`` processes over real WebSocket and TCP sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cirno.harness import Cluster, make_token
from cirno_sdk import (
    Client,
    ClientOptions,
    Direction,
    Disconnected,
    Event,
    JoinPolicy,
    KickedOut,
    KickedOutEvent,
    LoginRefused,
    Message,
    Reconnected,
    RequestTimeout,
    SendRefused,
    SqliteStore,
)
from cirno_sdk.options import ContentMode
from cirno_sdk.store import Store
from data_plane.wire import Command, Status
from tests.sdk.conftest import TENANT, tcp_url, token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

FAST = ClientOptions(backoff_initial=0.05, backoff_max=0.5, ack_interval=100)
Url = Callable[[Cluster], str]


def ws_url(cluster: Cluster) -> str:
    return cluster.ws_url


TRANSPORTS = pytest.mark.parametrize("url", [ws_url, tcp_url], ids=["ws", "tcp"])


def name(prefix: str) -> str:
    """An account name of its own for each test (the cluster is shared by the module)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def client(
    url: str,
    account: str,
    *,
    device: str = "default",
    options: ClientOptions = FAST,
    store: Store | None = None,
) -> AsyncIterator[Client]:
    async with Client(url, token(account), device=device, options=options, store=store) as c:
        yield c


async def receive(c: Client, count: int, timeout: float = 10.0) -> list[Message]:
    """The next ``count`` messages."""
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        async for message in c.messages():
            got.append(message)
            if len(got) == count:
                break
    return got


async def nothing_more(c: Client, wait: float = 0.3) -> None:
    """Assert no further message arrives within ``wait`` seconds."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(wait):
            async for message in c.messages():
                raise AssertionError(f"unexpected message {message}")


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def next_event(c: Client, kind: type[Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        async for event in c.events():
            if isinstance(event, kind):
                return event
    raise AssertionError(f"events ended before a {kind.__name__}")


@TRANSPORTS
async def test_two_clients_chat(cluster: Cluster, url: Url) -> None:
    alice, bob = name("alice"), name("bob")
    async with client(url(cluster), alice) as a, client(url(cluster), bob) as b:
        assert a.account == alice
        sent = [await a.send(bob, f"hello {i}", extra="e") for i in range(3)]
        got = await receive(b, 3)
        assert [m.message_id for m in got] == [s.message_id for s in sent]
        assert [m.body for m in got] == ["hello 0", "hello 1", "hello 2"]
        first = got[0]
        assert (first.sender, first.to, first.group, first.extra) == (alice, bob, "", "e")
        assert first.client_msg_id == sent[0].client_msg_id
        assert first.send_time == sent[0].send_time
        assert first.direction == Direction.RECEIVED
        reply = await b.send(alice, "hi back")
        (answer,) = await receive(a, 1)
        assert (answer.message_id, answer.sender, answer.body) == (reply.message_id, bob, "hi back")
        # The sender's store has its own messages, as sent ones; messages() does not.
        own = [m for m in a.store.messages() if m.direction == Direction.SENT]
        assert [m.message_id for m in own] == [s.message_id for s in sent]


async def test_other_devices_of_the_sender_see_its_messages(cluster: Cluster) -> None:
    alice, bob = name("alice"), name("bob")
    async with (
        client(cluster.ws_url, alice, device="phone") as phone,
        client(tcp_url(cluster), alice, device="laptop") as laptop,
        client(cluster.ws_url, bob) as b,
    ):
        sent = await phone.send(bob, "from my phone")
        (copy,) = await receive(laptop, 1)
        assert copy.message_id == sent.message_id
        assert copy.direction == Direction.SENT
        assert copy.sender == alice
        assert (await receive(b, 1))[0].message_id == sent.message_id


@pytest.mark.parametrize("content", ["lazy", "eager"])
async def test_offline_sync_delivers_missed_messages_in_order(
    cluster: Cluster, content: ContentMode
) -> None:
    alice, carol = name("alice"), name("carol")
    async with client(cluster.ws_url, alice) as a:
        sent = [await a.send(carol, f"while you were out {i}") for i in range(25)]
    bodies = [f"while you were out {i}" for i in range(25)]
    options = ClientOptions(content=content, content_batch=7, ack_interval=100)
    async with client(tcp_url(cluster), carol, options=options) as c:
        got = await receive(c, 25)
        assert [m.message_id for m in got] == [s.message_id for s in sent]
        assert all(m.sender == alice and m.to == carol for m in got)
        assert all(m.client_msg_id == "" for m in got)  # synced, not pushed
        if content == "lazy":  # the index only: bodies come when asked for
            assert not any(m.content_loaded or m.body for m in got)
            got = await c.load_contents(got)
        assert all(m.content_loaded for m in got)
        assert [m.body for m in got] == bodies
        assert [m.body for m in c.store.messages()] == bodies
        await nothing_more(c)


async def test_batched_ack_means_a_relogin_syncs_only_newer_messages(cluster: Cluster) -> None:
    alice, dave = name("alice"), name("dave")
    options = ClientOptions(ack_every=4, ack_interval=60_000)
    async with client(cluster.ws_url, alice) as a:
        async with client(cluster.ws_url, dave, device="tablet", options=options) as d:
            first = [await a.send(dave, f"first {i}") for i in range(8)]
            await receive(d, 8)
            await eventually(lambda: d.store.acked_id() == first[-1].message_id)
        newer = [await a.send(dave, f"newer {i}") for i in range(3)]
    async with client(tcp_url(cluster), dave, device="tablet") as again:
        got = await receive(again, 3)
        assert [m.message_id for m in got] == [s.message_id for s in newer]
        await nothing_more(again)
    async with client(tcp_url(cluster), dave, device="other-device") as other:
        # Read indexes are per device: a device that never acked gets everything.
        assert len(await receive(other, 11)) == 11


async def test_ack_on_close_flushes_the_pending_batch(cluster: Cluster) -> None:
    alice, erin = name("alice"), name("erin")
    options = ClientOptions(ack_every=1000, ack_interval=60_000)
    async with client(cluster.ws_url, alice) as a:
        async with client(cluster.ws_url, erin, options=options) as e:
            sent = [await a.send(erin, f"m{i}") for i in range(3)]
            await receive(e, 3)
        assert e.store.acked_id() == sent[-1].message_id
        async with client(cluster.ws_url, erin) as again:
            await nothing_more(again)


async def test_cut_connections_lose_nothing_and_duplicate_nothing(cluster: Cluster) -> None:
    """The receiver (WebSocket) is cut twice and the sender (TCP) once while 200
    messages flow: the receiver ends with exactly the acknowledged ones, in order."""
    total = 200
    sender, receiver = name("sender"), name("receiver")
    seen: list[Event] = []
    watched = dataclasses.replace(FAST, on_event=seen.append)
    async with (
        client(tcp_url(cluster), sender) as s,
        client(cluster.ws_url, receiver, options=watched) as r,
    ):
        sent: list[int] = []

        async def send_all() -> None:
            for i in range(total):
                if i == 100 and s._link.transport is not None:
                    s._link.transport.abort()
                sent.append((await s.send(receiver, f"n{i}")).message_id)

        got: list[Message] = []
        async with asyncio.timeout(40), asyncio.TaskGroup() as tg:
            tg.create_task(send_all())
            async for message in r.messages():
                got.append(message)
                if len(got) in (40, 120) and r._link.transport is not None:
                    r._link.transport.abort()
                if len(got) == total:
                    break
        assert len(set(sent)) == total
        assert [m.message_id for m in got] == sent
        # Synced ones come without bodies (lazy): loading them gives every body once.
        loaded = await r.load_contents(got)
        assert [m.body for m in loaded] == [f"n{i}" for i in range(total)]
        await nothing_more(r)
        reconnects = [event for event in seen if isinstance(event, Reconnected)]
        assert len(reconnects) == 2


async def test_kickout_stops_the_client_without_reconnecting(cluster: Cluster) -> None:
    frank = name("frank")
    seen: list[Event] = []
    options = ClientOptions(backoff_initial=0.05, on_event=seen.append)
    async with (
        client(cluster.ws_url, frank, device="phone", options=options) as first,
        client(tcp_url(cluster), frank, device="phone"),
    ):
        kicked = await next_event(first, KickedOutEvent)
        assert kicked.channel_id == first.channel_id
        disconnected = await next_event(first, Disconnected)
        assert disconnected.code == 4002
        assert not disconnected.will_reconnect
        assert first.stopped
        with pytest.raises(KickedOut):
            await first.send("anyone", "hello?")
        assert [m async for m in first.messages()] == []
        await asyncio.sleep(0.3)
        assert not any(isinstance(event, Reconnected) for event in seen)


async def test_resend_after_a_response_timeout_is_stored_once(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, gina = name("alice"), name("gina")
    async with client(cluster.ws_url, alice) as a, client(cluster.ws_url, gina) as g:
        attempts: list[str] = []
        original = a._link.request

        async def counting(transport: Any, command: str, body: Any, **kw: Any) -> Any:
            answer = await original(transport, command, body, **kw)
            if command == Command.CHAT_USER_TALK:
                attempts.append(body.client_msg_id)
                if len(attempts) == 1:  # stored, but its answer is "late": the SDK resends
                    raise RequestTimeout(f"no answer to {command} (simulated)")
            return answer

        monkeypatch.setattr(a._link, "request", counting)
        sent = await a.send(gina, "only once")
        assert len(attempts) > 1
        assert set(attempts) == {sent.client_msg_id}
        (got,) = await receive(g, 1)
        assert got.message_id == sent.message_id
        await nothing_more(g)
    # A fresh device of the receiver syncs the whole inbox: the message is there once.
    async with client(tcp_url(cluster), gina, device="audit") as audit:
        assert [m.message_id for m in await receive(audit, 1)] == [sent.message_id]
        await nothing_more(audit)


async def test_group_messages_arrive_in_group_sequence(cluster: Cluster) -> None:
    owner, bob, carol = name("owner"), name("bob"), name("carol")
    async with (
        client(cluster.ws_url, owner) as o,
        client(tcp_url(cluster), bob) as b,
        client(cluster.ws_url, carol) as c,
    ):
        group = await o.create_group("team", [bob], policy=JoinPolicy.OPEN)
        detail = await b.group_detail(group)
        assert (detail.name, detail.owner) == ("team", owner)
        assert {m.account for m in detail.members} == {owner, bob}
        await c.join_group(group)
        assert {m.account for m in await o.group_members(group)} == {owner, bob, carol}

        async def talk(sender: Client, count: int) -> None:
            for i in range(count):
                await sender.send(group, f"{sender.account} {i}", group=True)

        async with asyncio.TaskGroup() as tg:
            for sender in (o, b, c):
                tg.create_task(talk(sender, 10))
        seen_by: dict[int, int] = {}
        for member, own in ((o, owner), (b, bob), (c, carol)):
            got = await receive(member, 20)
            assert all(m.group == group and m.sender != own for m in got)
            seqs = [m.seq for m in got]
            assert seqs == sorted(set(seqs))
            for seq in seqs:
                seen_by[seq] = seen_by.get(seq, 0) + 1
            for author in {owner, bob, carol} - {own}:
                bodies = [m.body for m in got if m.sender == author]
                assert bodies == [f"{author} {i}" for i in range(10)]
        # One group sequence 1..30; every message reached both other members.
        assert seen_by == dict.fromkeys(range(1, 31), 2)
        await c.quit_group(group)
        with pytest.raises(SendRefused) as refused:
            await c.send(group, "let me back in", group=True)
        assert refused.value.status == Status.NOT_FOUND  # a non-member sees no group


async def test_refused_login_raises(cluster: Cluster) -> None:
    bad = make_token(TENANT, "mallory", "not-the-secret-of-this-tenant-at-all")
    with pytest.raises(LoginRefused) as refused:
        async with Client(cluster.ws_url, bad):
            pass
    assert refused.value.status == Status.UNAUTHORIZED


async def test_token_callable_and_sqlite_store_resume(cluster: Cluster, tmp_path: Path) -> None:
    alice, hank = name("alice"), name("hank")
    calls: list[int] = []

    async def fresh_token() -> str:
        calls.append(1)
        return token(hank)

    async with client(cluster.ws_url, alice) as a:
        store = SqliteStore(tmp_path / "hank.db")
        async with Client(cluster.ws_url, fresh_token, store=store, options=FAST) as h:
            first = [await a.send(hank, f"a{i}") for i in range(3)]
            await receive(h, 3)
            h._link.transport.abort()  # type: ignore[union-attr]
            await next_event(h, Reconnected)
        assert len(calls) == 2
        store.close()
        newer = await a.send(hank, "after restart")
        store = SqliteStore(tmp_path / "hank.db")
        async with Client(tcp_url(cluster), token(hank), store=store, options=FAST) as again:
            (got,) = await receive(again, 1)
            assert got.message_id == newer.message_id
            await nothing_more(again)
        assert [m.message_id for m in store.messages()] == [
            *(s.message_id for s in first),
            newer.message_id,
        ]
        store.close()


async def test_a_send_cut_off_before_its_response_is_resent_after_reconnect(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt reaches the server, its response never reaches us, the
    connection drops; after the reconnect the same client_msg_id gets the original id."""
    alice, ivan = name("alice"), name("ivan")
    async with client(tcp_url(cluster), alice) as a, client(cluster.ws_url, ivan) as i:
        attempts: list[str] = []
        original = a._link.request

        async def cut_first(transport: Any, command: str, body: Any, **kw: Any) -> Any:
            if command != Command.CHAT_USER_TALK:
                return await original(transport, command, body, **kw)
            attempts.append(body.client_msg_id)
            if len(attempts) > 1:
                return await original(transport, command, body, **kw)
            try:
                return await original(transport, command, body, **{**kw, "timeout": 0.0005})
            finally:
                (await receive(i, 1))  # stored and pushed: the server has it
                transport.abort()

        monkeypatch.setattr(a._link, "request", cut_first)
        sent = await a.send(ivan, "exactly once")
        assert attempts == [sent.client_msg_id] * 2
        await next_event(a, Reconnected)
        await nothing_more(i)
        assert [m.message_id for m in i.store.messages()] == [sent.message_id]


async def test_group_gap_is_filled_by_a_sync_before_later_messages(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, bob = name("owner"), name("bob")
    async with client(cluster.ws_url, owner) as o, client(tcp_url(cluster), bob) as b:
        group = await o.create_group("gappy", [bob])
        original = b._delivery.on_push

        def lossy(packet: Any) -> None:
            if packet.command == Command.CHAT_GROUP_TALK and b"second" in packet.body:
                return  # this push is "lost"
            original(packet)

        monkeypatch.setattr(b._delivery, "on_push", lossy)
        sent = [await o.send(group, body, group=True) for body in ("first", "second", "third")]
        got = await receive(b, 3)
        assert [m.message_id for m in got] == [s.message_id for s in sent]
        assert [m.seq for m in got] == [1, 2, 3]
        assert got[1].client_msg_id == ""  # it came through the sync
        assert got[2].client_msg_id == sent[2].client_msg_id


async def test_pings_keep_a_quiet_connection_and_silence_reconnects(cluster: Cluster) -> None:
    kim = name("kim")
    seen: list[Event] = []
    pinging = ClientOptions(
        ping_interval=0.1, read_timeout=0.5, backoff_initial=0.05, on_event=seen.append
    )
    async with client(cluster.ws_url, kim, options=pinging):
        await asyncio.sleep(1.2)
        assert seen == []
    silent = ClientOptions(ping_interval=60, read_timeout=0.3, backoff_initial=0.05)
    async with client(tcp_url(cluster), kim, options=silent) as c:
        lost = await next_event(c, Disconnected)
        assert lost.will_reconnect
        assert "no frame" in lost.reason
        await next_event(c, Reconnected)
