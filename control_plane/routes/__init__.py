"""One router per resource; ``control_plane.app`` includes them all."""

from __future__ import annotations

from typing import Any

from control_plane.models import ErrorResponse


def error_responses(**descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting errors, e.g. ``error_responses(e404="…")``.

    Keys are ``e`` plus the status code; every entry has the ``ErrorResponse`` body.
    """
    return {
        int(key.removeprefix("e")): {"model": ErrorResponse, "description": text}
        for key, text in descriptions.items()
    }


ADMIN_ERRORS = error_responses(
    e401="No bearer token (the answer carries `WWW-Authenticate: Bearer`).",
    e403="The bearer token is not the admin token.",
)
CLUSTER_ERRORS = error_responses(
    e401="No `X-Cirno-Cluster-Secret` header.",
    e403="The cluster secret is wrong.",
)
BAD_BODY = error_responses(e400="The body cannot be decoded (not UTF-8 JSON).")
