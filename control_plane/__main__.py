"""``python -m control_plane``: serve the control plane configured by the environment."""

from __future__ import annotations

import sys

from control_plane.errors import ConfigurationError
from control_plane.server import run
from control_plane.settings import ControlPlaneSettings


def main() -> int:
    """Read the settings from the environment and serve; 2 on a configuration error."""
    try:
        settings = ControlPlaneSettings.from_env()
    except ConfigurationError as exc:
        print(f"cirno control: {exc}", file=sys.stderr)
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
