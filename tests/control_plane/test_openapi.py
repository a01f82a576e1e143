"""The committed ``openapi/openapi.json`` is the app's contract: no drift allowed."""

from __future__ import annotations

import json
from pathlib import Path

from control_plane.openapi import OPENAPI_PATH, main, render


def test_committed_openapi_matches_the_app() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render(), (
        "openapi/openapi.json is stale: run `python -m control_plane.openapi`"
    )


def test_operations_have_stable_ids_and_summaries() -> None:
    document = json.loads(render())
    operations = {
        op["operationId"]: op for path in document["paths"].values() for op in path.values()
    }
    assert set(operations) >= {
        "tenants-create",
        "tenants-list",
        "tenants-get",
        "tenants-update",
        "tenants-delete",
        "tenants-secrets-rotate",
        "tenants-secrets-list",
        "tenants-secrets-revoke",
        "tenants-api-key-rotate",
        "tenants-tokens-create",
        "regions-create",
        "regions-list",
        "regions-get",
        "regions-update",
        "regions-delete",
        "grayscale-rules-create",
        "grayscale-rules-list",
        "grayscale-rules-get",
        "grayscale-rules-update",
        "grayscale-rules-delete",
        "nodes-list",
        "route-get",
        "route-ping",
        "internal-tenants-secrets",
        "internal-nodes-heartbeat",
        "internal-nodes-list",
        "internal-grayscale-rules",
        "health-check",
        "health-metrics",
    }
    for operation_id, operation in operations.items():
        assert operation.get("summary"), operation_id
        assert operation.get("description"), operation_id
    public = document["components"]["schemas"]["TenantPublic"]["properties"]
    assert not {"secret", "secret_kid", "api_key", "api_key_hash"} & set(public)


def test_check_flags_drift(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert main(["--check", "--output", str(target)]) == 1  # missing
    assert main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render()
    assert main(["--check", "--output", str(target)]) == 0
    target.write_text(render().replace("tenants-create", "tenants-make"), encoding="utf-8")
    assert main(["--check", "--output", str(target)]) == 1
