"""A bounded Hypothesis state-machine fuzz of a real gateway and logic node (issue 12).

Real processes (``run_topology``: control plane, one logic node, one gateway on MariaDB
and Redis) and blocking raw clients (:mod:`tests.fuzz.peers`) over TCP and
WebSocket. Each step sends one input on one connection: a login with a good or bad
token, a talk (valid or with a garbage body), another command, a ping, a garbage or
truncated packet, a lying length, a bad frame opcode, a text message, a torn frame
followed by a dropped socket, or a close. After every input the fuzz asserts:

- **a clean answer or a close with a reason**: a request gets its response (matched by
  sequence) and a ping its pong, or the server closes with a close code and, unless the
  code is 1000, a reason; a connection that just ends, or says nothing for
  ``ANSWER_TIMEOUT`` after a request, fails the run. Garbage the gateway may ignore
  (a stray response) must leave the connection answering pings;
- **no crash**: every process is alive after every step.

After every example (all its connections closed) it asserts **no leak**: the gateway's
``cirno_gateway_connections`` gauge returns to 0 (it is decremented after the channel is
dropped from the channel table, so 0 means the table is empty too) and the gateway's and
logic node's RSS stay under ``RSS_BOUND``.

Bounded for CI: ``MAX_EXAMPLES`` examples of ``STEPS`` steps, no deadline; it runs in
well under a minute.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cirno.harness import ADMIN_TOKEN, Topology, free_port, make_token, run_topology
from cirno.harness.raw_client import RAW_CLIENT_VERSION
from data_plane.transport.connection import CloseCode
from data_plane.wire import (
    BASIC_MAGIC,
    DEFAULT_MAX_PACKET_SIZE,
    LOGIC_MAGIC,
    BasicCode,
    BasicPacket,
    Command,
    Flag,
    LogicPacket,
    Opcode,
    ProtocolError,
    Status,
    decode_packet,
    pb,
)
from tests.fuzz.peers import Event, Peer, TcpPeer, WsPeer

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis]

MAX_EXAMPLES = 15
STEPS = 15
MAX_PEERS = 5
ANSWER_TIMEOUT = 5.0
QUIET = 0.3
"""How long to wait for a reaction to input the gateway may silently ignore."""
RSS_BOUND = 400 * 1024 * 1024
TENANT = "fuzz"
SECRET = "fuzz-secret-0123456789-abcdefghijklmn"
ACCOUNTS = ("f0", "f1", "f2")
DEVICES = ("d0", "d1")
COMMANDS = (
    Command.CHAT_USER_TALK,
    Command.CHAT_GROUP_DETAIL,
    Command.CHAT_GROUP_CREATE,
    Command.CHAT_OFFLINE_INDEX,
    Command.LOGIN_SIGNOUT,
    "cluster.handshake",
    "no.such.command",
)


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[tuple[Topology, int]]:
    metrics_port = free_port()
    with run_topology(
        Path(tmp_path_factory.mktemp("fuzz")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=1,
        gateways=1,
        # A connection the fuzz leaves silent must not time out under it.
        extra_env={"CIRNO_LOGIN_TIMEOUT": "120"},
        gateway_env=[{"CIRNO_GATEWAY_METRICS_PORT": str(metrics_port)}],
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running, metrics_port


def rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1)) * 1024


def open_connections(metrics_port: int) -> float:
    """The gateway's ``cirno_gateway_connections``, summed over transports."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cirno_gateway_connections{")
    )


def token_of(kind: str, account: str) -> str:
    """A login token: ``good`` or one of the ways a token is wrong."""
    if kind == "good":
        return make_token(TENANT, account, SECRET)
    if kind == "wrong_secret":
        return make_token(TENANT, account, SECRET[::-1])
    if kind == "expired":
        return make_token(TENANT, account, SECRET, ttl=-60)
    if kind == "unknown_tenant":
        return make_token("nosuchtenant", account, SECRET)
    if kind == "bad_account":
        return make_token(TENANT, "a,b{c}", SECRET)
    return kind  # garbage text as the token


class Conn:
    """A fuzzing connection and what the model knows about it."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.logged_in = False
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


class GatewayFuzz(RuleBasedStateMachine):
    """Random inputs on a handful of connections; see the module docstring."""

    topology: Topology
    metrics_port: int
    seen: Counter[str] = Counter()
    """Outcomes over the whole run (``closed 1002``, ``answer 0``, ``pong``, ...), so the
    test can assert the fuzz reached past the login."""

    def __init__(self) -> None:
        super().__init__()
        self.conns: list[Conn] = []

    # -- expectations ------------------------------------------------------------------

    def _closed(self, conn: Conn, event: Event, after: str) -> None:
        """``event`` ended ``conn``: it must carry a code and (unless 1000) a reason."""
        self.conns.remove(conn)
        self.seen[f"closed {event.code}"] += 1
        assert event.code is not None, f"{conn.peer.kind}: closed without a reason {after}"
        assert 1000 <= event.code <= 4999, (event.code, after)
        assert event.code == CloseCode.NORMAL or event.reason, (event.code, after)
        conn.peer.abort()

    def _expect(self, conn: Conn, wanted: Callable[[Event], bool], after: str) -> Event | None:
        """Read until an event ``wanted`` accepts (returned) or a close (None); others
        (pushes, a kickout before its close) are skipped."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            event = conn.peer.next_event(max(0.0, deadline - time.monotonic()))
            assert event is not None, f"{conn.peer.kind}: no answer and no close {after}"
            if event.kind == "closed":
                self._closed(conn, event, after)
                return None
            if wanted(event):
                return event

    def _response(self, conn: Conn, sequence: int, after: str) -> LogicPacket | None:
        def is_answer(event: Event) -> bool:
            packet = _decoded(event)
            return (
                isinstance(packet, LogicPacket)
                and packet.flag == Flag.RESPONSE
                and packet.sequence == sequence
            )

        event = self._expect(conn, is_answer, after)
        if event is None:
            return None
        packet = decode_packet(event.data)
        assert isinstance(packet, LogicPacket)
        self.seen[f"answer {packet.status}"] += 1
        if conn.logged_in:
            self.seen["answered after login"] += 1
        return packet

    def _still_serving(self, conn: Conn, after: str) -> None:
        """After input the gateway may ignore: a close with a reason, or the connection
        still answers a ping (logged in) / is refused cleanly (not logged in)."""
        event = conn.peer.next_event(QUIET)
        while event is not None and event.kind != "closed":
            event = conn.peer.next_event(QUIET)
        if event is not None:
            self._closed(conn, event, after)
            return
        self._ping(conn, after)

    def _ping(self, conn: Conn, after: str) -> None:
        if not conn.peer.send(BasicPacket.ping().encode()):
            return self._expect_close(conn, after)
        event = self._expect(conn, lambda e: _is_pong(_decoded(e)), f"ping {after}")
        if event is not None:
            assert conn.logged_in, f"pong before login {after}"
            self.seen["pong"] += 1
        return None

    def _expect_close(self, conn: Conn, after: str) -> None:
        event = conn.peer.next_event(ANSWER_TIMEOUT)
        while event is not None and event.kind != "closed":
            event = conn.peer.next_event(ANSWER_TIMEOUT)
        assert event is not None, f"send refused but no close {after}"
        self._closed(conn, event, after)

    def _request(self, conn: Conn, command: str, body: bytes, after: str) -> LogicPacket | None:
        sequence = conn.next_sequence()
        packet = LogicPacket.request(command, body, sequence=sequence, dest=ACCOUNTS[0])
        if not conn.peer.send(packet.encode()):
            self._expect_close(conn, after)
            return None
        answer = self._response(conn, sequence, after)
        if answer is not None and not conn.logged_in and command != Command.LOGIN_SIGNIN:
            # Anything but a login first is refused, and the connection closed.
            assert answer.status == Status.UNAUTHORIZED, answer.status
            self._expect_close(conn, after)
        return answer

    # -- rules -------------------------------------------------------------------------

    @precondition(lambda self: len(self.conns) < MAX_PEERS)
    @rule(
        transport=st.sampled_from(["tcp", "ws"]),
        login=st.booleans(),
        account=st.sampled_from(ACCOUNTS),
        device=st.sampled_from(DEVICES),
    )
    def connect(self, transport: str, login: bool, account: str, device: str) -> None:
        """A new connection, half the time logged in at once (so that most steps reach
        past the login, where most of the gateway's code is)."""
        if transport == "tcp":
            peer: Peer = TcpPeer(self.topology.tcp_addrs[0])
        else:
            peer = WsPeer(self.topology.ws_urls[0])
        conn = Conn(peer)
        self.conns.append(conn)
        if login:
            self._login(conn, "good", account, device)

    @precondition(lambda self: self.conns)
    @rule(
        data=st.data(),
        kind=st.sampled_from(
            ["good", "good", "wrong_secret", "expired", "unknown_tenant", "bad_account"]
        )
        | st.text(max_size=40),
        account=st.sampled_from(ACCOUNTS),
        device=st.sampled_from(DEVICES),
    )
    def login(self, data: st.DataObject, kind: str, account: str, device: str) -> None:
        self._login(data.draw(st.sampled_from(self.conns)), kind, account, device)

    def _login(self, conn: Conn, kind: str, account: str, device: str) -> None:
        # A cirno client (it names its version), so answers keep cirno's precise statuses.
        req = pb.LoginReq(
            token=token_of(kind, account), device=device, client_version=RAW_CLIENT_VERSION
        )
        body = req.SerializeToString()
        was_logged_in = conn.logged_in
        answer = self._request(conn, Command.LOGIN_SIGNIN, body, f"after a {kind!r} login")
        if answer is None:
            return
        if was_logged_in:
            assert answer.status == Status.FORBIDDEN, answer.status  # already logged in
        elif kind == "good":
            assert answer.status in (Status.SUCCESS, Status.RATE_LIMITED), answer.status
            conn.logged_in = answer.status == Status.SUCCESS
        else:
            assert answer.status == Status.UNAUTHORIZED, (kind, answer.status)
        if not conn.logged_in:
            self._expect_close(conn, f"after a refused {kind!r} login")

    @precondition(lambda self: self.conns)
    @rule(
        data=st.data(),
        command=st.sampled_from(COMMANDS),
        body=st.one_of(
            st.builds(
                lambda text, msg_id: pb.MessageReq(
                    type=1, body=text, client_msg_id=msg_id
                ).SerializeToString(),
                st.text(max_size=50),
                st.text(max_size=10),
            ),
            st.binary(max_size=64),
        ),
    )
    def request(self, data: st.DataObject, command: str, body: bytes) -> None:
        conn = data.draw(st.sampled_from(self.conns))
        self._request(conn, command, body, f"after a {command} request")

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def ping(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(self.conns))
        if conn.logged_in:
            self._ping(conn, "after a ping")
            return
        # A ping before the login is refused: the login must come first.
        conn.peer.send(BasicPacket.ping().encode())
        self._expect_close(conn, "after a ping before the login")

    @precondition(lambda self: self.conns)
    @rule(
        data=st.data(),
        payload=st.one_of(
            st.binary(max_size=80),
            st.binary(max_size=80).map(lambda tail: LOGIC_MAGIC + tail),
            st.binary(max_size=80).map(lambda tail: BASIC_MAGIC + tail),
            st.integers(min_value=2**20, max_value=2**32 - 1).map(
                lambda n: LOGIC_MAGIC + n.to_bytes(4, "big") + b"\x00" * 8
            ),
        ),
    )
    def garbage(self, data: st.DataObject, payload: bytes) -> None:
        conn = data.draw(st.sampled_from(self.conns))
        if not conn.peer.send(payload):
            self._expect_close(conn, "after garbage")
            return
        try:
            packet: object = decode_packet(payload)
        except ProtocolError:
            packet = None
        if packet is None:  # undecodable: the gateway must close, saying why
            self._expect_close(conn, f"after undecodable {payload[:16]!r}")
        else:
            self._still_serving(conn, f"after {payload[:16]!r}")

    @precondition(lambda self: self.conns)
    @rule(
        data=st.data(), size=st.integers(DEFAULT_MAX_PACKET_SIZE + 1, 4 * DEFAULT_MAX_PACKET_SIZE)
    )
    def oversize(self, data: st.DataObject, size: int) -> None:
        conn = data.draw(st.sampled_from(self.conns))
        if isinstance(conn.peer, TcpPeer) and data.draw(st.booleans()):
            # Only the header, announcing more than the limit: refused before the body.
            conn.peer.send_bytes(bytes([Opcode.BINARY]) + size.to_bytes(4, "big"))
        else:
            conn.peer.send(LOGIC_MAGIC + size.to_bytes(4, "big") + b"\x00" * size)
        self._expect_close(conn, f"after a {size}-byte packet")

    @precondition(lambda self: self.conns)
    @rule(data=st.data(), opcode=st.integers(0, 255).filter(lambda o: o not in set(Opcode)))
    def bad_frame(self, data: st.DataObject, opcode: int) -> None:
        conn = data.draw(st.sampled_from(self.conns))
        if isinstance(conn.peer, TcpPeer):
            conn.peer.send_bytes(bytes([opcode]) + (4).to_bytes(4, "big") + b"oops")
        elif isinstance(conn.peer, WsPeer):
            conn.peer.send_text("text is not a packet")
        self._expect_close(conn, f"after a bad frame (opcode {opcode})")

    @precondition(lambda self: self.conns)
    @rule(data=st.data(), cut=st.integers(1, 20))
    def drop_mid_frame(self, data: st.DataObject, cut: int) -> None:
        conn = data.draw(st.sampled_from(self.conns))
        self.conns.remove(conn)
        if isinstance(conn.peer, TcpPeer):
            frame = bytes([Opcode.BINARY]) + (100).to_bytes(4, "big") + LOGIC_MAGIC * 5
            conn.peer.send_bytes(frame[: FRAME_HEADER_CUT + cut])
        conn.peer.abort()

    # -- checks ------------------------------------------------------------------------

    @invariant()
    def processes_alive(self) -> None:
        for name, process in self.topology.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}"

    def teardown(self) -> None:
        for conn in self.conns:
            conn.peer.abort()
        deadline = time.monotonic() + 10
        while (left := open_connections(self.metrics_port)) != 0:
            assert time.monotonic() < deadline, f"{left} gateway connections left open"
            time.sleep(0.05)
        for name in ("gateway-1", "logic-1"):
            size = rss(self.topology.processes[name].pid)
            assert size < RSS_BOUND, f"{name} RSS {size / 2**20:.0f} MiB"


FRAME_HEADER_CUT = 5


def _decoded(event: Event) -> object:
    if event.kind != "packet":
        return None
    try:
        return decode_packet(event.data)
    except ProtocolError:
        return None


def _is_pong(packet: object) -> bool:
    return isinstance(packet, BasicPacket) and packet.code == BasicCode.PONG


def test_gateway_survives_random_input(topology: tuple[Topology, int]) -> None:
    GatewayFuzz.topology, GatewayFuzz.metrics_port = topology
    started = time.monotonic()
    run_state_machine_as_test(
        GatewayFuzz,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert time.monotonic() - started < 60, "the fuzz overran its CI budget"
    seen = GatewayFuzz.seen
    print(dict(seen))  # shown with -s: what the run exercised
    assert seen[f"answer {Status.SUCCESS}"] and seen["answered after login"] and seen["pong"]
    assert seen[f"closed {CloseCode.PROTOCOL_ERROR}"] and seen[f"closed {CloseCode.UNAUTHORIZED}"]
    assert open_connections(GatewayFuzz.metrics_port) == 0
    with httpx.Client(base_url=GatewayFuzz.topology.control_url, timeout=5) as client:
        nodes = client.get("/v1/nodes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert nodes.status_code == 200
