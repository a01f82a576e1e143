"""``python -m control_plane.openapi [--check] [--output PATH]``: the committed contract.

Writes ``openapi/openapi.json`` (sorted keys, indent 2, trailing newline) from the app
itself; ``--check`` writes nothing and exits 1 when the file differs from the app.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from control_plane.app import create_app
from control_plane.settings import ControlPlaneSettings

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"

# The schema does not depend on settings; these only let the app be built (the
# in-memory SQLite engine never connects).
_DUMMY_SETTINGS = ControlPlaneSettings(
    database_url="sqlite://", admin_token="openapi", cluster_secret="openapi"
)


def render() -> str:
    """The OpenAPI document of the control plane, as committed."""
    schema = create_app(_DUMMY_SETTINGS).openapi()
    return json.dumps(schema, sort_keys=True, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the OpenAPI document; 1 on drift."""
    parser = argparse.ArgumentParser(prog="python -m control_plane.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--output", type=Path, default=OPENAPI_PATH, help="the JSON file")
    args = parser.parse_args(argv)
    path: Path = args.output
    document = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != document:
            print(f"{path} is stale: run `python -m control_plane.openapi`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
