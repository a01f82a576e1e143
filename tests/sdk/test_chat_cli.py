"""``cirno chat``: the command loop in-process, and two real terminals as subprocesses."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from cirno.chat import default_url, mint_token, run, show_sdk_progress
from cirno.chat_conversations import format_message
from cirno.harness import Cluster
from cirno_sdk import Client, ClientOptions, Direction, Message
from tests.sdk.conftest import SECRET, TENANT, tcp_url, token

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def test_format_message() -> None:
    msg = Message(1, "alice", "bob", "", 1, "hi", "", 0)
    assert format_message(msg, "bob").endswith("alice → you: hi")
    sent = Message(2, "bob", "alice", "", 1, "yo", "", 0, direction=Direction.SENT)
    assert format_message(sent, "bob").endswith("you → alice: yo")
    group = Message(3, "eve", "", "g1", 1, "all", "", 0, seq=4)
    assert format_message(group, "bob").endswith("#g1 eve: all")


async def test_command_loop_sends_creates_groups_and_quits(cluster: Cluster) -> None:
    me, peer = f"ann-{uuid.uuid4().hex[:6]}", f"ben-{uuid.uuid4().hex[:6]}"
    fast = ClientOptions(ack_interval=100)
    async with (
        Client(cluster.ws_url, token(me), options=fast) as client,
        Client(tcp_url(cluster), token(peer), options=fast) as other,
    ):
        out = io.StringIO()
        done = asyncio.Event()

        async def lines() -> AsyncIterator[str]:
            yield f"@{peer} hello there\n"
            yield f"/create crew {peer}\n"
            await done.wait()
            yield "/quit\n"

        async def drive() -> None:
            got = [m async for m in _take(other, 1)]
            assert got[0].body == "hello there"
            for _ in range(250):
                if "created group crew: #" in out.getvalue():
                    break
                await asyncio.sleep(0.02)
            done.set()

        async with asyncio.timeout(10):
            results = await asyncio.gather(run(client, lines(), out), drive())
        assert results[0] == 0
        group_id = out.getvalue().split("created group crew: #", 1)[1].split()[0]
        await other.send(group_id, "group hello", group=True)
        assert "created group crew" in out.getvalue()


async def _take(client: Client, count: int) -> AsyncIterator[Message]:
    async with asyncio.timeout(10):
        async for message in client.messages():
            yield message
            count -= 1
            if count == 0:
                return


def test_two_terminals_chat(cluster: Cluster) -> None:
    """Two ``cirno chat`` processes, one over WebSocket, one over TCP."""
    zoe, yan = f"zoe-{uuid.uuid4().hex[:6]}", f"yan-{uuid.uuid4().hex[:6]}"

    def terminal(account: str, url: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "cirno.cli", "chat", "--url", url]
        command += ["--tenant", TENANT, "--account", account, "--secret", SECRET]
        return subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    receiver = terminal(yan, tcp_url(cluster))
    sender = terminal(zoe, cluster.ws_url)
    try:
        assert receiver.stdout is not None and sender.stdout is not None
        assert sender.stdin is not None and receiver.stdin is not None
        assert "connected to" in receiver.stdout.readline()
        assert "connected to" in sender.stdout.readline()
        sender.stdin.write(f"@{yan} hello from zoe\n/quit\n")
        sender.stdin.flush()
        assert sender.wait(timeout=15) == 0
        line = ""
        for _ in range(5):
            line = receiver.stdout.readline()
            if "hello from zoe" in line:
                break
        assert f"{zoe} → you: hello from zoe" in line
        receiver.stdin.write("/quit\n")
        receiver.stdin.flush()
        assert receiver.wait(timeout=15) == 0
    finally:
        for proc in (receiver, sender):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def test_missing_credentials_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from cirno.cli import main

    assert main(["chat", "--account", "x"]) == 2
    assert "--token" in capsys.readouterr().err


def test_mint_token_claims() -> None:
    import jwt

    claims = jwt.decode(mint_token("t", "a", "s" * 32), "s" * 32, algorithms=["HS256"])
    assert (claims["app"], claims["acc"]) == ("t", "a")


def test_default_url_follows_the_gateway_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables that move ``cirno up``'s gateway move ``cirno chat``'s default."""
    for name in ("CIRNO_GATEWAY_WS_HOST", "CIRNO_HOST", "CIRNO_GATEWAY_WS_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert default_url() == "ws://127.0.0.1:8000/"
    monkeypatch.setenv("CIRNO_GATEWAY_WS_PORT", "18000")
    monkeypatch.setenv("CIRNO_HOST", "0.0.0.0")
    assert default_url() == "ws://127.0.0.1:18000/"
    monkeypatch.setenv("CIRNO_GATEWAY_WS_HOST", "10.1.2.3")
    assert default_url() == "ws://10.1.2.3:18000/"


def test_chat_with_stdin_at_dev_null_logs_in_and_exits(cluster: Cluster) -> None:
    """``cirno chat </dev/null``, with only CIRNO_GATEWAY_WS_PORT saying where the
    gateway is: it connects, logs in, and ends cleanly at the end of its input."""
    port = cluster.ws_url.rsplit(":", 1)[1].strip("/")
    command = [sys.executable, "-m", "cirno.cli", "chat"]
    command += ["--tenant", TENANT, "--account", f"nul-{uuid.uuid4().hex[:6]}", "--secret", SECRET]
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CIRNO_GATEWAY_WS_PORT": port},
    )
    assert done.returncode == 0, done
    assert f"connected to ws://127.0.0.1:{port}/" in done.stdout
    assert "Traceback" not in done.stderr


def test_sdk_reconnect_attempts_are_shown() -> None:
    """After a lost connection the SDK retries alone; each failure reaches the user."""
    import logging

    err = io.StringIO()
    sdk = logging.getLogger("cirno_sdk")
    saved = (sdk.handlers[:], sdk.level, sdk.propagate)
    try:
        show_sdk_progress(err)
        sdk.info("connect failed: %s", "cannot connect to tcp://127.0.0.1:1: refused")
    finally:
        sdk.handlers, sdk.propagate = saved[0], saved[2]
        sdk.setLevel(saved[1])
    assert (
        err.getvalue()
        == "cirno chat: connect failed: cannot connect to tcp://127.0.0.1:1: refused\n"
    )


async def test_list_history_receipts_recall_and_delete_commands(cluster: Cluster) -> None:
    me, peer = f"cat-{uuid.uuid4().hex[:6]}", f"dog-{uuid.uuid4().hex[:6]}"
    fast = ClientOptions(ack_interval=100)
    async with (
        Client(tcp_url(cluster), token(me), options=fast) as client,
        Client(tcp_url(cluster), token(peer), options=fast) as other,
    ):
        first = await other.send(me, "first")
        second = await other.send(me, "second")
        mine = await client.send(peer, "mine")
        out, peer_out = io.StringIO(), io.StringIO()
        received = asyncio.Event()

        async def lines() -> AsyncIterator[str]:
            yield "/list\n"
            yield f"/history {peer}\n"
            await received.wait()
            yield f"/recall {mine.message_id}\n"
            yield f"/delete {first.message_id}\n"
            yield f"/history @{peer}\n"
            yield "/recall notanumber\n"
            yield "/quit\n"

        async def peer_lines() -> AsyncIterator[str]:
            for _ in range(500):
                if "✓" in peer_out.getvalue() and "recalled by" in peer_out.getvalue():
                    break
                await asyncio.sleep(0.02)
            received.set()
            yield "/quit\n"

        async with asyncio.timeout(15):
            results = await asyncio.gather(
                run(client, lines(), out), run(other, peer_lines(), peer_out)
            )
        assert tuple(results) == (0, 0)
        text = out.getvalue()
        assert f"{peer} [2 unread] {me}: mine" in text  # the newest is our own
        assert f"{second.message_id}] {peer} → you: second" in text
        assert f"* {mine.message_id} recalled" in text
        assert f"* {first.message_id} deleted for you" in text
        tail = text.rsplit("deleted for you", 1)[1]
        assert f"{mine.message_id}] you → {peer}: (recalled)" in tail
        assert str(first.message_id) not in tail
        assert "needs a message id" in tail
        assert f"✓ {me} read up to {mine.message_id}" in peer_out.getvalue()


async def test_login_catch_up_and_open_show_bodies_loaded_lazily(cluster: Cluster) -> None:
    me, peer = f"owl-{uuid.uuid4().hex[:6]}", f"fox-{uuid.uuid4().hex[:6]}"
    async with Client(tcp_url(cluster), token(peer)) as other:
        for i in range(5):
            await other.send(me, f"while away {i}")
    async with Client(cluster.ws_url, token(me), options=ClientOptions(ack_interval=100)) as c:
        out = io.StringIO()

        async def lines() -> AsyncIterator[str]:
            for _ in range(500):
                if "while away 4" in out.getvalue():
                    break
                await asyncio.sleep(0.02)
            yield f"/open {peer}\n"
            yield "/open nobody-here\n"
            yield "/quit\n"

        async with asyncio.timeout(15):
            assert await run(c, lines(), out) == 0
        # The login sync delivered index entries only; the chat loaded what it printed.
        assert all(m.content_loaded for m in c.store.messages())
    text = out.getvalue()
    for i in range(5):  # once as the catch-up, once in /open
        assert text.count(f"{peer} → you: while away {i}") == 2
    assert "(not loaded)" not in text
    assert "nothing from nobody-here on this device yet" in text
