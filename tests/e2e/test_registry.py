"""Registry end to end: logic nodes lease distinct node numbers and are discovered by
gateways; a grayscale rule sends a whitelisted account to a chosen logic zone, and a
change of the rule at runtime moves it, without restarting anything."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from cirno.harness import ADMIN_TOKEN, RawClient, Topology, make_token, run_topology
from data_plane.storage.ids import SnowflakeIds
from data_plane.wire import Command, Status, pb

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.anyio]

TENANT = "zones"
SECRET = "zoned-tenant-secret-0123456789-abcdefgh"


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, mysql_url: str, redis_url_module: str
) -> Iterator[Topology]:
    with run_topology(
        Path(tmp_path_factory.mktemp("registry")),
        database_url=mysql_url,
        session_url=redis_url_module,
        session_prefix=f"cirnotest:{uuid.uuid4().hex[:8]}",
        logic_nodes=2,
        gateways=1,
        logic_env=[{"CIRNO_ZONE": "zone-a"}, {"CIRNO_ZONE": "zone-b"}],
        discovery=True,
    ) as running:
        running.create_tenant(TENANT, SECRET)
        yield running


def admin(topology: Topology) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=topology.control_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )


async def zone_of_node_numbers(topology: Topology) -> dict[int, str]:
    async with admin(topology) as http:
        nodes = (await http.get("/v1/nodes")).json()["data"]
    return {n["id_node"]: n["zone"] for n in nodes if n["role"] == "logic"}


async def send_zone(client: RawClient, to: str, zones: dict[int, str]) -> str:
    """The zone of the logic node that stored a new message (its id names the node)."""
    seq = client.request(Command.CHAT_USER_TALK, pb.MessageReq(type=1, body="z"), dest=to)
    answer = await client.response(seq, timeout=15)
    assert answer.status == Status.SUCCESS, answer
    return zones[SnowflakeIds.node_of(answer.parse_body(pb.MessageResp).messageId)]


async def test_leases_discovery_and_grayscale_zone(topology: Topology) -> None:
    zones = await zone_of_node_numbers(topology)
    assert sorted(zones.values()) == ["zone-a", "zone-b"], "two distinct leased numbers"

    vip = f"vip-{uuid.uuid4().hex[:6]}"
    async with admin(topology) as http:
        created = await http.post(
            "/v1/grayscale/rules",
            json={"priority": 10, "tenant": TENANT, "accounts": [vip], "logic_zone": "zone-b"},
        )
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]

    async def zone_after_login() -> str:
        client = await RawClient.websocket(topology.ws_urls[0])
        answer = await client.login(make_token(TENANT, vip, SECRET), timeout=15)
        assert answer.status == Status.SUCCESS
        zone = await send_zone(client, "someone", zones)
        client.close()
        return zone

    with anyio.fail_after(20):  # the gateway picks the rule up on its next poll
        while True:
            if await zone_after_login() == "zone-b":
                break
            await anyio.sleep(0.3)
    for _ in range(3):
        assert await zone_after_login() == "zone-b"

    async with admin(topology) as http:
        patched = await http.patch(f"/v1/grayscale/rules/{rule_id}", json={"logic_zone": "zone-a"})
        assert patched.status_code == 200, patched.text
    # A live connection moves too: its next request goes to the new zone.
    client = await RawClient.websocket(topology.ws_urls[0])
    assert (await client.login(make_token(TENANT, vip, SECRET), timeout=15)).status == 0
    with anyio.fail_after(20):
        while True:
            if await send_zone(client, "someone", zones) == "zone-a":
                break
            await anyio.sleep(0.3)
    client.close()
