"""``cirno chat``: a terminal chat client on the SDK (``cirno_sdk``).

Prints incoming messages and events; reads commands from stdin, one per line::

    @bob hello            send "hello" to bob
    #<group-id> hi        send "hi" to a group
    /create team bob eve  create a group with bob and eve (prints its id)
    /join <group-id>      join a group;  /leave <group-id>  quit it
    /members <group-id>   list a group's members
    /list                 conversations, newest first, with unread counts
    /history <peer|#group>  a conversation's last messages (marks them read)
    /open <peer|#group>   the conversation's messages on this device, bodies loaded
    /recall <id>          take a message of yours back;  /delete <id>  hide one for you
    /push-register <token> [platform]   register this device's push token
    /push-unregister      forget it
    /watch bob eve        follow their presence: "● bob online" / "○ bob offline" now
                          and whenever one comes online or goes offline
    /unwatch bob          stop following
    /typing @bob          tell bob (or #<group-id>) that you are typing
    /quit                 leave (Ctrl-D too)

and the group administration commands of :mod:`cirno.chat_groups` (/invite, /info,
/dismiss, /transfer, /update, /policy, /admin, /mute, /unmute, /apply, /applications,
/approve, /refuse).

Messages synced at login come without their bodies (the SDK's lazy sync): the chat
loads the bodies of what it prints (:mod:`cirno.chat_conversations`).

Every message line shows its id (``[12:00:01 1234…]``); a peer's read receipt prints
``✓ bob read up to 1234…`` under the sender's lines, a recall ``* 1234… recalled``.

Typing: stdin is read a whole line at a time, so the chat cannot see keystrokes and
never sends typing indicators by itself; ``/typing`` sends one (at most one per 2 s per
conversation reaches the other side). A typing push prints "bob is typing…".

Stdin may be a terminal or a pipe or file: commands are run line by line, and the chat
ends at the end of its input (so ``cirno chat ... </dev/null`` connects, logs in and
exits 0; with stdin closed it does the same).

The token comes from ``--token``, or is minted locally from ``--tenant``, ``--account``
and ``--secret`` (HS256, what a tenant backend does; for development only). Before the
SDK takes over, the gateway's address is dialled once per back-off step, and every
failure is printed at once ("connection refused ...; retrying in 1.0 s"), so an address
where nothing listens is never 30 silent seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import stat
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO, get_args
from urllib.parse import urlsplit

from cirno.chat_conversations import (
    CONVERSATION_COMMANDS,
    conversation_command,
    print_messages,
    stamp,
)
from cirno.chat_groups import GROUP_COMMANDS, GROUP_HELP, group_command
from cirno.options import described
from cirno_sdk import (
    Backoff,
    CirnoError,
    Client,
    ClientOptions,
    ConversationKind,
    Disconnected,
    Event,
    KickedOutEvent,
    PresenceChanged,
    PushPlatform,
    ReadEvent,
    RecallEvent,
    Reconnected,
    Typing,
)
from data_plane.cluster import identity

TOKEN_TTL_SECONDS = 24 * 3600
HELP = "commands: @<account> <text> | #<group> <text> | /create <name> <members...> | " + (
    "/join <group> | /leave <group> | /members <group> | /list | /history <peer|#group> | "
    "/open <peer|#group> | "
    "/recall <id> | /delete <id> | /watch <accounts...> | "
    "/unwatch <accounts...> | /typing @<account>|#<group> | "
    "/push-register <token> [platform] | /push-unregister | /quit\ngroups: " + GROUP_HELP
)
USAGE_ERROR = 2
DESCRIPTION = (
    "Chat in the terminal. Commands, one per line on stdin:\n"
    "  @<account> <text>   #<group> <text>   /create <name> <members...>\n"
    "  /join <group>   /leave <group>   /members <group>   /quit (or Ctrl-D)\n"
    "  /list   /history <peer|#group>   /open <peer|#group>   /recall <id>   /delete <id>\n"
    "  group administration: /invite /info /dismiss /transfer /update /policy /admin\n"
    "  /mute /unmute /apply /applications /approve /refuse (each prints its usage)\n"
    "  /watch <accounts...>   /unwatch <accounts...>   /typing @<account>|#<group>\n"
    "  /push-register <token> [android|ios|web|other]   /push-unregister\n\n"
    "Stdin may be a terminal, a pipe or a file: lines run in order and the chat ends at\n"
    "the end of its input. An unreachable gateway is reported at once and retried with\n"
    "back-off until it answers (Ctrl-C stops)."
)


def mint_token(tenant: str, account: str, secret: str, ttl: int = TOKEN_TTL_SECONDS) -> str:
    """A user token as a tenant backend mints it: HS256, claims acc/app/iat/exp, no kid."""
    return identity.mint_token(secret, None, tenant, account, int(time.time()), ttl)


def default_url() -> str:
    """The gateway ``cirno up`` runs with the same environment: ``CIRNO_GATEWAY_WS_HOST``
    (else ``CIRNO_HOST``, else 127.0.0.1; a wildcard means loopback) and
    ``CIRNO_GATEWAY_WS_PORT`` (else 8000)."""
    host = os.environ.get("CIRNO_GATEWAY_WS_HOST") or os.environ.get("CIRNO_HOST") or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    port = os.environ.get("CIRNO_GATEWAY_WS_PORT") or "8000"
    return f"ws://{host}:{port}/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cirno chat``."""
    parser.add_argument(
        "--url",
        default=default_url(),
        help=described(
            "ws://host:port/ or tcp://host:port of a gateway",
            default_url(),
            "CIRNO_GATEWAY_WS_PORT, CIRNO_GATEWAY_WS_HOST or CIRNO_HOST",
        ),
    )
    parser.add_argument("--token", help=described("a user token (JWT)", "none"))
    parser.add_argument(
        "--tenant", help=described("with --account and --secret: mint a token locally", "none")
    )
    parser.add_argument("--account", help=described("the account to mint a token for", "none"))
    parser.add_argument("--secret", help=described("the tenant's HS256 secret", "none"))
    parser.add_argument(
        "--device", default="terminal", help=described("device id of this login", "terminal")
    )


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a gateway address the SDK can dial, or None when it is."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"--url {url!r} is malformed ({exc})"
    if parts.scheme not in ("ws", "wss", "tcp"):
        return f"--url must be ws://host:port/ or tcp://host:port, not {url!r}"
    if not parts.hostname or (parts.scheme == "tcp" and port is None):
        return f"--url {url!r} needs a host and a port, e.g. {parts.scheme}://127.0.0.1:8000"
    return None


def main(args: argparse.Namespace) -> int:
    """Run the chat until /quit, end of input, or a kickout; returns the exit status."""
    problem = url_problem(args.url)
    if problem:
        print(f"cirno chat: {problem}", file=sys.stderr)
        return USAGE_ERROR
    if args.token:
        token = args.token
    elif args.tenant and args.account and args.secret:
        token = mint_token(args.tenant, args.account, args.secret)
    else:
        print("cirno chat: give --token, or --tenant, --account and --secret", file=sys.stderr)
        return USAGE_ERROR
    show_sdk_progress(sys.stderr)
    try:
        return asyncio.run(_main(args.url, token, args.device))
    except KeyboardInterrupt:
        return 130


def show_sdk_progress(err: TextIO) -> None:
    """Print the SDK's own account of reconnects (``connect failed: …``, ``login did not
    complete: …``) on ``err``: after a lost connection the SDK retries by itself, and a
    user should see each attempt fail rather than silence."""
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("cirno chat: %(message)s"))
    sdk = logging.getLogger("cirno_sdk")
    sdk.handlers = [handler]
    sdk.setLevel(logging.INFO)
    sdk.propagate = False


async def wait_reachable(url: str, err: TextIO) -> None:
    """Dial the gateway's host and port until it accepts a TCP connection, printing each
    failure and the back-off before the next attempt."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    options = ClientOptions()
    backoff = Backoff(
        initial=options.backoff_initial,
        maximum=options.backoff_max,
        multiplier=options.backoff_multiplier,
        jitter=options.backoff_jitter,
    )
    while True:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), options.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            delay = backoff.next_delay()
            _say(err, f"cirno chat: {_why(exc)} at {host}:{port}; retrying in {delay:.1f} s")
            await asyncio.sleep(delay)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens)"
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.strerror or errno.errorcode.get(exc.errno, str(exc))
    return str(exc)


async def _main(url: str, token: str, device: str) -> int:
    await wait_reachable(url, sys.stderr)
    try:
        async with Client(url, token, device=device) as client:
            _say(sys.stdout, f"connected to {url} as {client.account} (device {device})")
            _say(sys.stdout, HELP)
            return await run(client, stdin_lines(), sys.stdout)
    except CirnoError as exc:
        print(f"cirno chat: {exc}", file=sys.stderr)
        return 1


async def run(client: Client, lines: AsyncIterator[str], out: TextIO) -> int:
    """Print messages and events while executing ``lines``; 0 on /quit or end of input,
    1 when the client stopped (kicked out, login refused)."""
    async with asyncio.TaskGroup() as tg:
        printer = tg.create_task(print_messages(client, out))
        watcher = tg.create_task(_print_events(client, out))
        reader = tg.create_task(_execute(client, lines, out))
        done, _ = await asyncio.wait({printer, reader}, return_when=asyncio.FIRST_COMPLETED)
        for task in (printer, watcher, reader):
            task.cancel()
    return 0 if reader in done else 1


async def _execute(client: Client, lines: AsyncIterator[str], out: TextIO) -> None:
    async for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line == "/quit":
            return
        try:
            await _command(client, line, out)
        except CirnoError as exc:
            _say(out, f"! {exc}")


async def _command(client: Client, line: str, out: TextIO) -> None:
    head, _, rest = line.partition(" ")
    if head[0] in "@#" and len(head) > 1 and rest:
        group = head[0] == "#"
        sent = await client.send(head[1:], rest, group=group)
        where = head if group else f"you → {head[1:]}"
        _say(out, f"[{stamp(sent.send_time)} {sent.message_id}] {where}: {rest}")
    elif head in CONVERSATION_COMMANDS:
        await conversation_command(client, head, rest.strip(), out)
    elif head == "/create" and rest:
        name, *members = rest.split()
        group_id = await client.create_group(name, members)
        _say(out, f"created group {name}: #{group_id}")
    elif head in ("/join", "/leave", "/members") and rest:
        group_id = rest.strip().lstrip("#")
        if head == "/join":
            await client.join_group(group_id)
            _say(out, f"joined #{group_id}")
        elif head == "/leave":
            await client.quit_group(group_id)
            _say(out, f"left #{group_id}")
        else:
            people = await client.group_members(group_id)
            _say(out, f"#{group_id}: " + ", ".join(m.account for m in people))
    elif head == "/push-register" and rest:
        token, _, platform = rest.strip().partition(" ")
        await client.register_push(token, _platform(platform.strip()))
        _say(out, "push token registered for this device")
    elif head == "/push-unregister":
        await client.unregister_push()
        _say(out, "push token forgotten for this device")
    elif head in GROUP_COMMANDS:
        await group_command(client, head, rest, out)
    elif head in ("/watch", "/unwatch") and rest:
        accounts = rest.split()
        if head == "/unwatch":
            await client.unsubscribe_presence(*accounts)
            _say(out, "stopped watching " + ", ".join(accounts))
            return
        states = await client.subscribe_presence(*accounts)
        for account, online in states.items():
            _say(out, presence_mark(account, online))
    elif head == "/typing" and rest.strip()[:1] in ("@", "#") and len(rest.strip()) > 1:
        target = rest.strip()
        if not await client.typing(target[1:], group=target[0] == "#"):
            _say(out, "(typing not sent: at most one per 2 s per conversation)")
    else:
        _say(out, HELP)


def _platform(text: str) -> PushPlatform:
    """The platform named on a ``/push-register`` line (default ``other``)."""
    for known in get_args(PushPlatform):
        if text == known:
            platform: PushPlatform = known
            return platform
    return "other"


async def _print_events(client: Client, out: TextIO) -> None:
    async for event in client.events():
        _say(out, format_event(event))


def format_event(event: Event) -> str:
    """One line for an event."""
    if isinstance(event, KickedOutEvent):
        return "* kicked out: this account logged in on the same device elsewhere"
    if isinstance(event, Disconnected):
        tail = "reconnecting…" if event.will_reconnect else "not reconnecting"
        return f"* disconnected ({event.code} {event.reason}); {tail}"
    if isinstance(event, Reconnected):
        return "* reconnected"
    if isinstance(event, ReadEvent):
        if event.kind == ConversationKind.USER and event.peer != event.reader:
            return f"✓ {event.reader} read up to {event.message_id}"
        return f"* read on another device: {event.peer} up to {event.message_id}"
    if isinstance(event, RecallEvent):
        return f"* {event.message_id} recalled by {event.recalled_by or event.sender}"
    if isinstance(event, PresenceChanged):
        return presence_mark(event.account, event.online)
    if isinstance(event, Typing):
        where = f" in #{event.group}" if event.group else ""
        if event.stopped:
            return f"{event.account} stopped typing{where}"
        return f"{event.account} is typing{where}…"
    by = f" by {event.by}" if event.by else ""
    detail = f" ({event.detail})" if event.detail else ""
    return f"* group #{event.group_id} {event.kind}{by}: {', '.join(event.accounts)}{detail}"


def presence_mark(account: str, online: bool) -> str:
    """``● bob online`` or ``○ bob offline``."""
    return f"● {account} online" if online else f"○ {account} offline"


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _pollable(stream: TextIO) -> bool:
    """Whether the event loop can watch ``stream``: a pipe, a socket or a terminal.
    Files and devices such as /dev/null cannot be registered with epoll (the loop would
    fail later, in a callback), so they are read from a thread."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


async def stdin_lines() -> AsyncIterator[str]:
    """Lines of stdin without blocking the event loop; nothing when stdin is closed."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return
    if not _pollable(stdin):  # a file or /dev/null: reads never block for long
        while line := await asyncio.to_thread(stdin.readline):
            yield line
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    try:
        while line_bytes := await reader.readline():
            yield line_bytes.decode("utf-8", "replace")
    finally:
        with contextlib.suppress(Exception):
            transport.close()
