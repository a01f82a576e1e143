"""The bare relay baseline: the same Python networking as cirno-im, without durability.

Theory of operation
-------------------
Two processes stand in for the gateway and the logic node, and do what they do on the
message path minus storage, session lookups and authentication:

- ``front`` (gateway-like) accepts WebSocket clients (picows, through
  :func:`data_plane.transport.ws.serve_ws`), takes the first packet as a login whose
  token *is* the account name, and forwards every further request over one TCP link
  (:func:`data_plane.transport.tcp.connect_tcp`) to ``back``, tagged with the account as
  channel id. Packets coming back are routed by header: a response to the channel id,
  a push to ``dest`` (1:1) or to every account in the ``accounts`` meta (group fan-out,
  encoded once without the meta, as the gateway does).
- ``back`` (logic-like) decodes each request with the project's codec, parses the
  ``MessageReq`` body, answers ``MessageResp`` at once (no commit to wait for) and
  sends a ``MessagePush`` built like the logic node's. ``chat.group.create`` remembers
  the member list in memory so ``chat.group.talk`` can fan out.

So a 1:1 message makes the same hops as in cirno-im (client → front → back → front →
receiver, and the response back → front → sender) with the same codec and transports.
Plain asyncio, uvloop, no anyio. Run with ``python -m bench.relay back --port P`` and
``python -m bench.relay front --ws-port P --back 127.0.0.1:Q``; SIGTERM stops either.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import time

import uvloop

from data_plane.transport.connection import PacketConnection
from data_plane.transport.errors import ConnectionClosed
from data_plane.transport.tcp import connect_tcp, serve_tcp
from data_plane.transport.ws import serve_ws
from data_plane.wire import (
    BasicCode,
    BasicPacket,
    Command,
    Flag,
    LogicPacket,
    Meta,
    ProtocolError,
    Status,
    decode_packet,
    pb,
)

ACCOUNTS_META = "accounts"
LINK_SEND_BUFFER = 64 * 1024 * 1024
PONG = BasicPacket(BasicCode.PONG).encode()


class Back:
    """The logic-like hop: answer at once, push to the receiver(s)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._groups: dict[str, list[str]] = {}

    async def serve_link(self, conn: PacketConnection) -> None:
        """Handle one front link until it closes."""
        try:
            while True:
                for raw in await conn.receive():
                    packet = decode_packet(raw)
                    if isinstance(packet, LogicPacket) and packet.flag == Flag.REQUEST:
                        self._handle(conn, packet)
        except (ConnectionClosed, ProtocolError):
            conn.close()

    def _handle(self, conn: PacketConnection, packet: LogicPacket) -> None:
        command = packet.command
        sender = packet.channel_id
        if command == Command.CHAT_USER_TALK or command == Command.CHAT_GROUP_TALK:
            req = packet.parse_body(pb.MessageReq)
            message_id = next(self._ids)
            now_ms = int(time.time() * 1000)
            accounts = ""
            if command == Command.CHAT_GROUP_TALK:
                members = self._groups.get(packet.dest)
                if members is None:
                    conn.send(packet.error_response(Status.NOT_FOUND, "no such group").encode())
                    return
                accounts = ",".join(m for m in members if m != sender)
            answer = pb.MessageResp(messageId=message_id, sendTime=now_ms)
            conn.send(packet.response(body=answer).encode())
            body = pb.MessagePush(
                messageId=message_id,
                type=req.type,
                body=req.body,
                extra=req.extra,
                sender=sender,
                sendTime=now_ms,
                client_msg_id=req.client_msg_id,
                group=packet.dest if accounts else "",
            )
            if accounts:
                meta = (Meta(ACCOUNTS_META, accounts),)
                push = LogicPacket.make_push(command, body, meta=meta)
            else:
                push = LogicPacket.make_push(command, body, dest=packet.dest)
            conn.send(push.encode())
        elif command == Command.CHAT_GROUP_CREATE:
            create = packet.parse_body(pb.GroupCreateReq)
            group_id = f"g{next(self._ids)}"
            self._groups[group_id] = list(dict.fromkeys([sender, *create.members]))
            reply = pb.GroupCreateResp(group_id=group_id)
            conn.send(packet.response(body=reply).encode())
        else:
            conn.send(packet.error_response(Status.NOT_IMPLEMENTED, "relay").encode())


class Front:
    """The gateway-like hop: WebSocket clients in, one TCP link to ``back``."""

    def __init__(self, back: PacketConnection) -> None:
        self._back = back
        self._clients: dict[str, PacketConnection] = {}

    async def serve_client(self, conn: PacketConnection) -> None:
        """Log the client in (token = account) and forward its requests."""
        account = ""
        try:
            batch = await conn.receive()
            login = decode_packet(batch[0])
            if not isinstance(login, LogicPacket) or login.command != Command.LOGIN_SIGNIN:
                conn.close(4001, "login first")
                return
            account = login.parse_body(pb.LoginReq).token
            self._clients[account] = conn
            reply = pb.LoginResp(channelId=account, account=account)
            conn.send(login.response(body=reply).encode())
            self._forward(conn, account, batch[1:])
            while True:
                self._forward(conn, account, await conn.receive())
        except (ConnectionClosed, ProtocolError):
            pass
        finally:
            if self._clients.get(account) is conn:
                del self._clients[account]
            conn.close()

    def _forward(self, conn: PacketConnection, account: str, batch: list[bytes]) -> None:
        for raw in batch:
            packet = decode_packet(raw)
            if isinstance(packet, BasicPacket):
                conn.send(PONG)
            else:
                self._back.send(packet.replace(channel_id=account).encode())

    async def serve_back(self) -> None:
        """Route what ``back`` sends: responses by channel id, pushes by dest/accounts."""
        clients = self._clients
        while True:
            for raw in await self._back.receive():
                packet = decode_packet(raw)
                if not isinstance(packet, LogicPacket):
                    continue
                if packet.flag != Flag.PUSH:
                    target = clients.get(packet.channel_id)
                    if target is not None:
                        target.send(raw)
                elif packet.dest:
                    target = clients.get(packet.dest)
                    if target is not None:
                        target.send(raw)
                else:
                    accounts = packet.meta_value(ACCOUNTS_META) or ""
                    data = packet.replace(meta=()).encode()
                    for account in accounts.split(","):
                        target = clients.get(account)
                        if target is not None:
                            target.send(data)


async def _run_back(port: int) -> None:
    back = Back()
    async with asyncio.TaskGroup() as tg:

        def accept(conn: PacketConnection) -> None:
            tg.create_task(back.serve_link(conn))

        server = await serve_tcp("127.0.0.1", port, accept, max_send_buffer=LINK_SEND_BUFFER)
        print(f"relay back listening on {port}", flush=True)
        try:
            await asyncio.Future()  # until cancelled
        finally:
            server.close()


async def _run_front(ws_port: int, back_host: str, back_port: int) -> None:
    link = await connect_tcp(back_host, back_port, max_send_buffer=LINK_SEND_BUFFER)
    front = Front(link)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(front.serve_back())

        def accept(conn: PacketConnection) -> None:
            tg.create_task(front.serve_client(conn))

        server = await serve_ws("127.0.0.1", ws_port, accept)
        print(f"relay front listening on {ws_port}", flush=True)
        try:
            await asyncio.Future()  # until cancelled
        finally:
            server.close()
            link.close()


async def _until_signalled(main: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.relay back --port P`` / ``front --ws-port P --back HOST:PORT``."""
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)
    back = roles.add_parser("back", help="the logic-like hop")
    back.add_argument("--port", type=int, required=True)
    front = roles.add_parser("front", help="the gateway-like hop")
    front.add_argument("--ws-port", type=int, required=True)
    front.add_argument("--back", required=True, help="host:port of the back hop")
    args = parser.parse_args(argv)

    async def entry() -> None:
        if args.role == "back":
            task = asyncio.create_task(_run_back(args.port))
        else:
            host, _, port = str(args.back).rpartition(":")
            task = asyncio.create_task(_run_front(args.ws_port, host, int(port)))
        await _until_signalled(task)

    uvloop.run(entry())


if __name__ == "__main__":
    main()
