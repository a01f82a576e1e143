"""The conversation side of ``cirno chat``: message lines, /list, /history, /open,
/recall, /delete.

Messages synced at login come without their bodies (the SDK's lazy sync,
``Message.content_loaded`` False): :func:`print_messages` loads the bodies of what it
prints through ``Client.load_contents``, a batch of lines at a time (a sync's page is
queued at once, so a long catch-up costs one content request per ``content_batch``
lines), and ``/open`` shows a conversation from the device's store through
``Client.open_conversation`` (only the bodies not stored yet are fetched).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TextIO

from cirno_sdk import CirnoError, Client, ConversationKind, Direction, Message

CONVERSATION_COMMANDS = frozenset({"/list", "/history", "/open", "/recall", "/delete"})


async def print_messages(client: Client, out: TextIO) -> None:
    """Print messages as they arrive, in batches of whatever has arrived: a sync's page
    is queued at once, so the bodies it left out load with few requests."""
    arrived: asyncio.Queue[Message | None] = asyncio.Queue()

    async def pump() -> None:
        async for message in client.messages():
            arrived.put_nowait(message)
        arrived.put_nowait(None)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(pump())
        while True:
            batch = [await arrived.get()]
            while not arrived.empty():
                batch.append(arrived.get_nowait())
            shown = [message for message in batch if message is not None]
            for message in await loaded(client, shown, out):
                _say(out, format_message(message, client.account))
            if None in batch:
                return


async def loaded(client: Client, messages: list[Message], out: TextIO) -> list[Message]:
    """``messages`` with their bodies (a lazy sync delivers them without); as they are
    when the load fails (they print as not loaded)."""
    if all(message.content_loaded for message in messages):
        return messages
    try:
        return await client.load_contents(messages)
    except CirnoError as exc:
        _say(out, f"! message bodies not loaded: {exc}")
        return messages


async def conversation_command(client: Client, head: str, rest: str, out: TextIO) -> None:
    """``/list``, ``/history <peer|#group>``, ``/open <peer|#group>``, ``/recall <id>``,
    ``/delete <id>``."""
    if head == "/list":
        page = await client.conversations(limit=50)
        for c in page.conversations:
            where = f"#{c.peer}" if c.kind == ConversationKind.GROUP else c.peer
            text = "(recalled)" if not c.preview and c.last_message_id else c.preview
            _say(out, f"{where} [{c.unread} unread] {c.last_sender}: {text}")
        if not page.conversations:
            _say(out, "no conversations yet")
        return
    if not rest:
        _say(out, f"usage: {head} <peer|#group>" if head != "/recall" else "usage: /recall <id>")
        return
    if head == "/open":
        group = rest.startswith("#")
        peer = rest.lstrip("#@")
        messages = await client.open_conversation(peer, group=group)
        for message in messages:
            _say(out, format_message(message, client.account))
        if messages:
            await client.mark_read(peer, messages[-1].message_id, group=group)
        else:
            _say(out, f"nothing from {rest} on this device yet (/history asks the server)")
        return
    if head == "/history":
        group = rest.startswith("#")
        peer = rest.lstrip("#@")
        history = await client.history(peer, group=group)
        for message in reversed(history.messages):
            _say(out, format_message(message, client.account))
        if history.messages:
            await client.mark_read(peer, history.messages[0].message_id, group=group)
        return
    if not rest.isdigit():
        _say(out, f"! {head} needs a message id")
        return
    if head == "/recall":
        await client.recall(int(rest))
        _say(out, f"* {rest} recalled")
    else:
        await client.delete(int(rest))
        _say(out, f"* {rest} deleted for you")


def stamp(send_time: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(send_time / 1000))


def format_message(message: Message, me: str) -> str:
    """One line for a message: ``[12:00:01 <id>] #group alice: hi`` or ``alice → you:
    hi``; a recalled message shows as ``(recalled)``, one whose body is not loaded as
    ``(not loaded)``."""
    head = f"{stamp(message.send_time)} {message.message_id}"
    if message.recalled:
        message = dataclasses.replace(message, body="(recalled)")
    elif not message.content_loaded:
        message = dataclasses.replace(message, body="(not loaded)")
    if message.group:
        return f"[{head}] #{message.group} {message.sender}: {message.body}"
    if message.direction == Direction.SENT:
        return f"[{head}] you → {message.to or '?'}: {message.body}"
    return f"[{head}] {message.sender} → {'you' if message.to == me else message.to}: " + (
        message.body
    )


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
