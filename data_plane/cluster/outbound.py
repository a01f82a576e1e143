"""Where a tenant's events and offline notifications go: webhook endpoints and push
providers, as logic nodes learn them from the control plane.

Logic nodes poll ``GET /internal/v1/outbound`` (cluster secret, ``If-None-Match``) like
the tenant list (``tenants``), keep the last good answer, and go on delivering from it
while the control plane is down. The send path asks ``wants(tenant, event)`` to decide,
without suspending, whether to write an outbox row at all, so a tenant with no webhooks
pays nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio
import httpx

log = logging.getLogger(__name__)

MESSAGE_CREATED = "message.created"
LOGIN = "login"
LOGOUT = "logout"
KICKOUT = "kickout"
GROUP_CREATED = "group.created"
GROUP_MEMBERS_CHANGED = "group.members_changed"
GROUP_DISMISSED = "group.dismissed"
TEST_EVENT = "webhook.test"
"""Sent only to the endpoint a test was asked for (never subscribed to)."""
EVENT_TYPES = (
    MESSAGE_CREATED,
    LOGIN,
    LOGOUT,
    KICKOUT,
    GROUP_CREATED,
    GROUP_MEMBERS_CHANGED,
    GROUP_DISMISSED,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A webhook endpoint; ``events`` empty means every event."""

    id: str
    tenant: str
    url: str
    events: frozenset[str]
    secret: str
    enabled: bool = True

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint receives ``event_type`` (a test event is addressed)."""
        return self.enabled and (not self.events or event_type in self.events)


@dataclass(frozen=True, slots=True)
class Provider:
    """A tenant's push provider: ``kind`` is ``http`` or ``fcm``."""

    tenant: str
    kind: str
    url: str
    project_id: str
    auth_token: str
    collapse_ms: int


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    """Every tenant's endpoints and providers."""

    endpoints: dict[str, tuple[Endpoint, ...]]
    providers: dict[str, Provider]


def parse_outbound(payload: object) -> OutboundConfig:
    """Parse the internal endpoint's JSON; raises ValueError on a malformed answer."""
    if not isinstance(payload, dict):
        raise ValueError("outbound answer is not an object")
    endpoints: dict[str, list[Endpoint]] = {}
    for item in payload["endpoints"]:
        endpoint = Endpoint(
            id=str(item["id"]),
            tenant=str(item["tenant"]),
            url=str(item["url"]),
            events=frozenset(str(e) for e in item["events"]),
            secret=str(item["secret"]),
            enabled=bool(item["enabled"]),
        )
        endpoints.setdefault(endpoint.tenant, []).append(endpoint)
    providers = {
        str(item["tenant"]): Provider(
            tenant=str(item["tenant"]),
            kind=str(item["kind"]),
            url=str(item["url"]),
            project_id=str(item["project_id"]),
            auth_token=str(item["auth_token"]),
            collapse_ms=int(item["collapse_ms"]),
        )
        for item in payload["providers"]
    }
    return OutboundConfig({t: tuple(e) for t, e in endpoints.items()}, providers)


class OutboundDirectory:
    """Endpoints and providers, refreshed from the control plane (see the module doc)."""

    def __init__(
        self,
        control_url: str,
        cluster_secret: str,
        *,
        refresh_interval: float = 5.0,
        timeout: float = 3.0,
    ) -> None:
        self._url = control_url.rstrip("/") + "/internal/v1/outbound"
        self._headers = {"X-Cirno-Cluster-Secret": cluster_secret}
        self._refresh_interval = refresh_interval
        self._client = httpx.AsyncClient(timeout=timeout)
        self._config = OutboundConfig({}, {})
        self._etag: str | None = None
        self.loaded = False

    @classmethod
    def fixed(cls, config: OutboundConfig) -> OutboundDirectory:
        """A directory that never polls (tests of the dispatchers)."""
        directory = cls("http://127.0.0.1:9", "")
        directory._config = config
        directory.loaded = True
        return directory

    async def refresh(self) -> bool:
        """Fetch the configuration; keeps the last one and returns False on failure."""
        headers = dict(self._headers)
        if self._etag:
            headers["If-None-Match"] = self._etag
        try:
            response = await self._client.get(self._url, headers=headers)
            if response.status_code == 304:
                return True
            response.raise_for_status()
            config = parse_outbound(response.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("outbound refresh from %s failed: %s", self._url, exc)
            return False
        self._config = config
        self._etag = response.headers.get("ETag")
        self.loaded = True
        return True

    async def run(self) -> None:
        """Refresh forever, every ``refresh_interval`` seconds."""
        while True:
            await self.refresh()
            await anyio.sleep(self._refresh_interval)

    def endpoints(self, tenant: str) -> tuple[Endpoint, ...]:
        """The tenant's endpoints (enabled or not)."""
        return self._config.endpoints.get(tenant, ())

    def endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        """One endpoint, if it still exists."""
        return next((e for e in self.endpoints(tenant) if e.id == endpoint_id), None)

    def wants(self, tenant: str, event_type: str) -> bool:
        """Whether any enabled endpoint of ``tenant`` receives ``event_type``."""
        return any(e.wants(event_type) for e in self.endpoints(tenant))

    def tenants_with_endpoints(self) -> list[str]:
        """Tenants that have at least one endpoint."""
        return sorted(self._config.endpoints)

    def provider(self, tenant: str) -> Provider | None:
        """The tenant's push provider, if it configured one."""
        return self._config.providers.get(tenant)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
