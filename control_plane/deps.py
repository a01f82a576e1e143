"""Authentication dependencies: the admin bearer token and the cluster secret.

A missing credential is 401 (with ``WWW-Authenticate`` for the bearer scheme), a wrong
one is 403. Secrets are compared in constant time, as bytes, so that a non-ASCII
header can never turn into a 500.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from control_plane.settings import ControlPlaneSettings

CLUSTER_SECRET_HEADER = "X-Cirno-Cluster-Secret"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="`Authorization: Bearer <CIRNO_ADMIN_TOKEN>`",
)
_cluster_header = APIKeyHeader(
    name=CLUSTER_SECRET_HEADER,
    auto_error=False,
    scheme_name="ClusterSecret",
    description="The cluster secret shared by gateways, logic nodes and the control plane.",
)


def settings_of(request: Request) -> ControlPlaneSettings:
    """The settings of the app serving ``request``."""
    settings: ControlPlaneSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ControlPlaneSettings, Depends(settings_of)]


def secrets_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any characters."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with ``Authorization: Bearer <admin token>``."""
    if credentials is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets_equal(credentials.credentials, settings.admin_token):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="invalid admin token")


def require_cluster(
    settings: SettingsDep,
    secret: Annotated[str | None, Depends(_cluster_header)],
) -> None:
    """Allow the request only with the cluster secret in ``X-Cirno-Cluster-Secret``."""
    if not secret:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"missing {CLUSTER_SECRET_HEADER} header",
        )
    if not secrets_equal(secret, settings.cluster_secret):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="invalid cluster secret")


# Parameter aliases (``_: AdminDep``); a whole router takes
# ``dependencies=[Depends(require_admin)]`` instead.
AdminDep = Annotated[None, Depends(require_admin)]
ClusterDep = Annotated[None, Depends(require_cluster)]
