"""Property-based contract test: schemathesis drives every route of the ASGI app.

Runs in-process on SQLite with the admin token and the cluster secret supplied (a seeded
tenant, region and gateway give the generated requests something to find). For every
operation a few generated requests, valid and invalid, must never get a 5xx, and every
answer must match the documented status codes, content type and response schema.
``GET /v1/route`` is served by the app's ASGI fast path, and the contract is checked on
what that fast path answers: the declared FastAPI route's service is replaced by one that
fails, so a request it served would be a 500. The server API's operations run with no
logic node registered: a request that passes every check before the link is answered
its documented 503 "no logic node" (the e2e tests cover what a live node answers).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from control_plane.app import create_app
from control_plane.openapi import render
from tests.control_plane.conftest import ADMIN, ADMIN_TOKEN, CLUSTER, FakeClock, settings_for

HEADERS = {**ADMIN, **CLUSTER}
EXAMPLES = 15
CHECKS: list[Any] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


SERVER_API_TAG = "server API"
NO_LOGIC_NODE = '{"detail":"no logic node'
"""The documented 503s of a server-API call: none registered (or the registered ones,
fed by generated heartbeats, unreachable or silent)."""


def no_server_error_but_no_logic_node(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except the documented 503 of a server-API call that
    reached the point of asking a logic node (none runs in this test)."""
    if response.status_code == 503 and response.text.startswith(NO_LOGIC_NODE):
        return None
    result: bool | None = not_a_server_error(ctx, response, case)
    return result


SERVER_API_CHECKS: list[Any] = [no_server_error_but_no_logic_node, *CHECKS[1:]]

SCHEMA = json.loads(render())
SERVER_API_OPERATIONS = {
    (method.upper(), path)
    for path, item in SCHEMA["paths"].items()
    for method, operation in item.items()
    if SERVER_API_TAG in operation.get("tags", [])
}
OPERATIONS = sorted(
    (method.upper(), path) for path, item in SCHEMA["paths"].items() for method in item
)


@pytest.fixture(scope="module")
def api_schema(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, geoip_db: Path
) -> Any:
    """One app (on a copy of the migrated template) for every operation of the module."""
    path = tmp_path_factory.mktemp("contract") / "control.db"
    shutil.copyfile(sqlite_template, path)
    clock = FakeClock(float(int(time.time())))
    settings = settings_for(
        f"sqlite:///{path}", clock=clock, geoip_db=str(geoip_db), server_api_timeout=0.5
    )
    app = create_app(settings)
    with TestClient(app) as client:
        seed(client)
    app.state.route_service = DeclaredRouteUnused()
    return schemathesis.openapi.from_asgi("/openapi.json", app)


class DeclaredRouteUnused:
    """Stands in for the declared route's service: the fast path must answer instead."""

    async def answer(self, *_args: Any) -> bytes:
        raise AssertionError("GET /v1/route was served by the declared route, not the fast path")


def seed(client: TestClient) -> None:
    client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
    client.post(
        "/v1/regions",
        json={"id": "eu", "name": "EU", "countries": ["DE"], "continents": ["EU"]},
        headers=ADMIN,
    )
    client.post(
        "/internal/v1/nodes/heartbeat",
        json={
            "id": "gw-1",
            "role": "gateway",
            "zone": "eu-a",
            "region": "eu",
            "version": "1",
            "ws_url": "ws://gw-1/",
            "connections": 1,
            "capacity": 10,
        },
        headers=CLUSTER,
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_route_honours_its_contract(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    headers = dict(HEADERS)
    if path == "/v1/route":
        headers["X-Cirno-Admin-Token"] = ADMIN_TOKEN

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        server_api = (method, path) in SERVER_API_OPERATIONS
        case.call_and_validate(headers=headers, checks=SERVER_API_CHECKS if server_api else CHECKS)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip(f"{method} {path} has no input to make invalid")
