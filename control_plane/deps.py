"""Authentication dependencies: the admin token, tenant API keys, the cluster secret.

A missing credential is 401 (with ``WWW-Authenticate`` for the bearer scheme), a wrong
one is 403. Secrets are compared in constant time, as bytes, so that a non-ASCII
header can never turn into a 500. Also the app's clock and a helper raising 422s in
FastAPI's own shape for checks that need the database.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any, NoReturn

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from control_plane.settings import ControlPlaneSettings

CLUSTER_SECRET_HEADER = "X-Cirno-Cluster-Secret"
API_KEY_HEADER = "X-Api-Key"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="`Authorization: Bearer <CIRNO_ADMIN_TOKEN>`",
)
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="TenantApiKey",
    description="A tenant's API key (also accepted as `Authorization: Bearer <key>`); "
    "valid only for its own tenant.",
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


def now_of(request: Request) -> float:
    """The current time (epoch seconds) on the clock of the app serving ``request``."""
    return settings_of(request).clock()


NowDep = Annotated[float, Depends(now_of)]


def invalidate_routes(request: Request) -> None:
    """Let ``/v1/route`` see a change (tenants, keys, regions, rules, nodes) at once."""
    request.app.state.snapshots.invalidate()


def secrets_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any characters."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def api_key_hash(api_key: str) -> str:
    """The SHA-256 (hex) under which a tenant API key is stored."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()


def unprocessable(message: str, loc: tuple[str | int, ...] = ("body",)) -> NoReturn:
    """Raise a 422 in FastAPI's validation-error shape (for checks made after parsing)."""
    error: dict[str, Any] = {"type": "value_error", "loc": loc, "msg": message, "input": None}
    raise RequestValidationError([error])


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


def presented_credential(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> str:
    """The bearer token or ``X-Api-Key`` of a route open to admins and tenant backends."""
    given = credentials.credentials if credentials is not None else api_key
    if not given:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token or X-Api-Key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return given


CredentialDep = Annotated[str, Depends(presented_credential)]


# Parameter aliases (``_: AdminDep``); a whole router takes
# ``dependencies=[Depends(require_admin)]`` instead.
AdminDep = Annotated[None, Depends(require_admin)]
ClusterDep = Annotated[None, Depends(require_cluster)]
