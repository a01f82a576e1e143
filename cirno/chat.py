"""``cirno chat``: a terminal chat client on the SDK (``cirno_sdk``).

Prints incoming messages and events; reads commands from stdin, one per line::

    @bob hello            send "hello" to bob
    #<group-id> hi        send "hi" to a group
    /create team bob eve  create a group with bob and eve (prints its id)
    /join <group-id>      join a group;  /leave <group-id>  quit it
    /members <group-id>   list a group's members
    /quit                 leave (Ctrl-D too)

The token comes from ``--token``, or is minted locally from ``--tenant``, ``--account``
and ``--secret`` (HS256, what a tenant backend does; for development only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO

from cirno_sdk import (
    CirnoError,
    Client,
    Direction,
    Disconnected,
    Event,
    KickedOutEvent,
    Message,
    Reconnected,
)
from data_plane.cluster import identity

TOKEN_TTL_SECONDS = 24 * 3600
HELP = "commands: @<account> <text> | #<group> <text> | /create <name> <members...> | " + (
    "/join <group> | /leave <group> | /members <group> | /quit"
)


def mint_token(tenant: str, account: str, secret: str, ttl: int = TOKEN_TTL_SECONDS) -> str:
    """A user token as a tenant backend mints it: HS256, claims acc/app/iat/exp, no kid."""
    return identity.mint_token(secret, None, tenant, account, int(time.time()), ttl)


def main(args: argparse.Namespace) -> int:
    """Run the chat until /quit, end of input, or a kickout; returns the exit status."""
    if args.token:
        token = args.token
    elif args.tenant and args.account and args.secret:
        token = mint_token(args.tenant, args.account, args.secret)
    else:
        print("cirno chat: give --token, or --tenant, --account and --secret", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args.url, token, args.device))
    except KeyboardInterrupt:
        return 130


async def _main(url: str, token: str, device: str) -> int:
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
        printer = tg.create_task(_print_messages(client, out))
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
        await client.send(head[1:], rest, group=group)
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
    else:
        _say(out, HELP)


async def _print_messages(client: Client, out: TextIO) -> None:
    async for message in client.messages():
        _say(out, format_message(message, client.account))


async def _print_events(client: Client, out: TextIO) -> None:
    async for event in client.events():
        _say(out, format_event(event))


def format_message(message: Message, me: str) -> str:
    """One line for a message: ``[12:00:01] #group alice: hi`` or ``alice → you: hi``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(message.send_time / 1000))
    if message.group:
        return f"[{stamp}] #{message.group} {message.sender}: {message.body}"
    if message.direction == Direction.SENT:
        return f"[{stamp}] you → {message.to or '?'}: {message.body}"
    return f"[{stamp}] {message.sender} → {'you' if message.to == me else message.to}: " + (
        message.body
    )


def format_event(event: Event) -> str:
    """One line for an event."""
    if isinstance(event, KickedOutEvent):
        return "* kicked out: this account logged in on the same device elsewhere"
    if isinstance(event, Disconnected):
        tail = "reconnecting…" if event.will_reconnect else "not reconnecting"
        return f"* disconnected ({event.code} {event.reason}); {tail}"
    if isinstance(event, Reconnected):
        return "* reconnected"
    return f"* group #{event.group_id} {event.kind}: {', '.join(event.accounts)}"


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


async def stdin_lines() -> AsyncIterator[str]:
    """Lines of stdin without blocking the event loop (a thread for regular files)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
    except ValueError:  # a regular file: reads never block for long
        while line := await asyncio.to_thread(sys.stdin.readline):
            yield line
        return
    try:
        while line_bytes := await reader.readline():
            yield line_bytes.decode("utf-8", "replace")
    finally:
        with contextlib.suppress(Exception):
            transport.close()
