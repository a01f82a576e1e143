"""Logic services: the command → service rule, the node's settings and CLI, and a real
node (built by ``build_logic``, linked over TCP) that runs only some services."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from data_plane.cluster.protocol import (
    HANDSHAKE_COMMAND,
    META_ACCOUNT,
    META_GATEWAY,
    META_NODE,
    META_SECRET,
    META_SERVICES,
    META_TENANT,
    REFRESH_COMMAND,
)
from data_plane.cluster.services import (
    ALL_SERVICES,
    Service,
    UnknownService,
    parse_services,
    service_of,
)
from data_plane.logic.main import build_logic
from data_plane.logic.settings import LogicSettings
from data_plane.metrics import LOGIC_REGISTRY
from data_plane.transport.tcp import TcpConnection, connect_tcp
from data_plane.wire import Command, LogicPacket, Meta, Status, decode_packet, pb

SECRET = "a-cluster-secret"

EXPECTED = {
    Command.LOGIN_SIGNIN: Service.LOGIN,
    Command.LOGIN_SIGNOUT: Service.LOGIN,
    Command.CHAT_USER_TALK: Service.CHAT,
    Command.CHAT_TALK_ACK: Service.CHAT,
    Command.CHAT_GROUP_TALK: Service.GROUP,
    Command.CHAT_GROUP_CREATE: Service.GROUP,
    Command.CHAT_GROUP_JOIN: Service.GROUP,
    Command.CHAT_GROUP_QUIT: Service.GROUP,
    Command.CHAT_GROUP_DETAIL: Service.GROUP,
    Command.CHAT_GROUP_MEMBERS: Service.GROUP,
    Command.PUSH_REGISTER: Service.LOGIN,
    Command.PUSH_UNREGISTER: Service.LOGIN,
    Command.CHAT_GROUP_DISMISS: Service.GROUP,
    Command.CHAT_GROUP_TRANSFER: Service.GROUP,
    Command.CHAT_GROUP_UPDATE: Service.GROUP,
    Command.CHAT_GROUP_ADMIN: Service.GROUP,
    Command.CHAT_GROUP_MUTE: Service.GROUP,
    Command.CHAT_GROUP_APPLY: Service.GROUP,
    Command.CHAT_GROUP_APPROVE: Service.GROUP,
    Command.CHAT_GROUP_APPLICATIONS: Service.GROUP,
    Command.CHAT_OFFLINE_INDEX: Service.SYNC,
    Command.CHAT_OFFLINE_CONTENT: Service.SYNC,
    # Conversations are chat: reads and writes of the store every service shares, and
    # chat.read / chat.recall push like chat.user.talk.
    Command.CHAT_CONVERSATION_LIST: Service.CHAT,
    Command.CHAT_HISTORY: Service.CHAT,
    Command.CHAT_READ: Service.CHAT,
    Command.CHAT_READ_COUNT: Service.CHAT,
    Command.CHAT_RECALL: Service.CHAT,
    Command.CHAT_DELETE: Service.CHAT,
    Command.PRESENCE_SUBSCRIBE: Service.LOGIN,
    Command.PRESENCE_UNSUBSCRIBE: Service.LOGIN,
    Command.CHAT_TYPING: Service.CHAT,
}


def test_every_command_has_the_documented_service() -> None:
    assert set(EXPECTED) == set(Command), "a new command needs its service decided"
    for command, service in EXPECTED.items():
        assert service_of(command) == service, command
    assert service_of(REFRESH_COMMAND) == Service.LOGIN
    assert service_of("chat.group.someday") == Service.GROUP
    assert service_of("chat.someday") == Service.CHAT
    assert service_of("weather.today") is None
    assert service_of("") is None


def test_made_up_commands_do_not_grow_the_memo() -> None:
    from data_plane.cluster import services

    for number in range(1000):
        assert service_of(f"chat.made.up.{number}") == Service.CHAT
    assert len(services._memo) <= services._MEMO_LIMIT


def test_parse_services() -> None:
    assert parse_services("login, Chat") == {Service.LOGIN, Service.CHAT}
    assert parse_services("sync,") == {Service.SYNC}
    assert parse_services("") == ALL_SERVICES
    assert parse_services(" , ") == ALL_SERVICES
    with pytest.raises(UnknownService) as refused:
        parse_services("login,offline,royal")
    assert str(refused.value) == (
        "unknown logic service(s) offline, royal: valid are chat, group, login, sync"
    )


def test_settings_read_the_services_and_refuse_a_private_session_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CIRNO_CLUSTER_SECRET", SECRET)
    assert LogicSettings.from_env().services == ALL_SERVICES
    monkeypatch.setenv("CIRNO_LOGIC_SERVICES", "chat,group,sync")
    settings = LogicSettings.from_env()
    assert settings.services == {Service.CHAT, Service.GROUP, Service.SYNC}
    with pytest.raises(ValueError, match="session store shared with the other logic nodes"):
        settings.check()  # memory:// is the default
    monkeypatch.setenv("CIRNO_SESSION_URL", "redis://127.0.0.1:6379/0")
    LogicSettings.from_env().check()
    LogicSettings(cluster_secret=SECRET).check()  # every service on memory:// is fine
    monkeypatch.setenv("CIRNO_LOGIC_SERVICES", "chat,nope")
    with pytest.raises(UnknownService, match="nope"):
        LogicSettings.from_env()


def _cirno_logic(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    for name in ("CIRNO_LOGIC_SERVICES", "CIRNO_SESSION_URL"):
        environment.pop(name, None)
    environment.update(CIRNO_CLUSTER_SECRET=SECRET, **env)
    return subprocess.run(
        [sys.executable, "-m", "cirno.cli", "logic", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cirno_logic_refuses_unknown_services_clearly() -> None:
    flag = _cirno_logic("--services", "login,royal")
    assert flag.returncode == 2
    assert "cirno logic: unknown logic service(s) royal" in flag.stderr
    variable = _cirno_logic(CIRNO_LOGIC_SERVICES="sync,offline")
    assert variable.returncode == 2
    assert "cirno logic: unknown logic service(s) offline" in variable.stderr
    private = _cirno_logic("--services", "chat")  # the flag wins over the variable
    assert private.returncode == 2
    assert "running only chat needs a session store shared" in private.stderr


@asynccontextmanager
async def node(services: frozenset[Service]) -> AsyncIterator[tuple[TcpConnection, LogicPacket]]:
    """A logic node running ``services`` (memory stores, no control plane), and a gateway
    link to it with the handshake answer."""
    settings = LogicSettings(
        cluster_secret=SECRET,
        node_id="logic-test",
        port=0,
        id_node=1,
        database_url="memory://",
        control_url="http://127.0.0.1:9",  # unreachable: tenants stay unknown
        services=services,
    )
    async with (
        build_logic(settings, id_node=1) as server,
        anyio.create_task_group() as tg,
    ):
        await tg.start(server.run)
        conn = await connect_tcp("127.0.0.1", server.port)
        hello = LogicPacket.request(
            HANDSHAKE_COMMAND, meta=[Meta(META_SECRET, SECRET), Meta(META_GATEWAY, "gw")]
        )
        conn.send(hello.encode())
        with anyio.fail_after(10):
            welcome = decode_packet((await conn.receive())[0])
        assert isinstance(welcome, LogicPacket) and welcome.status == Status.SUCCESS
        try:
            yield conn, welcome
        finally:
            conn.close(1000, "")
            tg.cancel_scope.cancel()


async def ask(conn: TcpConnection, command: str, sequence: int) -> LogicPacket:
    meta = [Meta(META_TENANT, "t"), Meta(META_ACCOUNT, "alice"), Meta(META_GATEWAY, "gw")]
    request = LogicPacket.request(command, sequence=sequence, channel_id="ch", meta=meta)
    conn.send(request.encode())
    with anyio.fail_after(10):
        while True:
            for raw in await conn.receive():
                packet = decode_packet(raw)
                if isinstance(packet, LogicPacket) and packet.sequence == sequence:
                    return packet


def _not_served(command: str) -> float:
    value = LOGIC_REGISTRY.get_sample_value(
        "cirno_logic_requests_total", {"command": command, "outcome": "not_served"}
    )
    return value or 0.0


@pytest.mark.anyio
@pytest.mark.parametrize("service", sorted(ALL_SERVICES))
async def test_a_node_serves_only_its_services(service: Service) -> None:
    """Every command of another service gets NotImplemented naming the service it needs;
    the node's own commands reach their handlers (which answer something else here: the
    bodies are empty and the tenant unknown)."""
    async with node(frozenset({service})) as (conn, welcome):
        assert welcome.meta_value(META_NODE) == "logic-test"
        assert welcome.meta_value(META_SERVICES) == service
        for sequence, command in enumerate(sorted(Command), start=1):
            refused_before = _not_served(command)
            answer = await ask(conn, command, sequence)
            reason = answer.parse_body(pb.ErrorResp).message if answer.body else ""
            if service_of(command) == service:
                assert answer.status != Status.NOT_IMPLEMENTED, (command, reason)
            else:
                assert answer.status == Status.NOT_IMPLEMENTED, command
                assert reason == (
                    f"{command} is served by the {service_of(command)} service, which "
                    f"logic node logic-test does not run (it runs {service})"
                )
                assert _not_served(command) == refused_before + 1


@pytest.mark.anyio
async def test_a_node_with_every_service_announces_them_all() -> None:
    async with node(ALL_SERVICES) as (conn, welcome):
        assert welcome.meta_value(META_SERVICES) == "chat,group,login,sync"
        answer = await ask(conn, Command.LOGIN_SIGNIN, 1)
        # The login reached its handler, which reads the inbox head from the tenant's
        # message store: with the tenant unknown (no control plane) it cannot.
        assert answer.status == Status.SYSTEM_EXCEPTION
        assert "not known to this node yet" in answer.parse_body(pb.ErrorResp).message
        unknown = await ask(conn, "weather.today", 2)
        assert unknown.status == Status.NOT_IMPLEMENTED
        assert unknown.parse_body(pb.ErrorResp).message == "unknown command 'weather.today'"
