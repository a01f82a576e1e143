"""The data plane's view of tenants: status, signing keys, quotas, isolation, bans, the
moderation hook and the recall window, cached.

Gateways and logic nodes hold no control-plane database. They poll the control plane's
internal endpoint (``GET /internal/v1/tenants``, authenticated by the cluster secret) with
``If-None-Match``, keep the last good answer, and go on serving from it while the
control plane is down. An unknown tenant triggers one early refresh (at most once per
``miss_refresh_interval``), so a tenant created a moment ago can log in at once.

Every answer that changed something is handed to the directory's subscribers (see
:meth:`TenantDirectory.subscribe`): that is how a gateway closes the connections a
change revoked (a disabled tenant, a banned account, a key gone) within one refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import anyio
import httpx

from data_plane.cluster.patience import Patience

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TenantKey:
    """One HS256 signing secret of a tenant and its key id."""

    kid: str
    secret: str


@dataclass(frozen=True, slots=True)
class Ban:
    """A banned account: refused until ``expires_at`` (epoch seconds; None: until lifted)."""

    account: str
    expires_at: float | None
    reason: str = ""

    def active(self, now: float) -> bool:
        """Whether the ban still holds at ``now`` (the control plane stops listing it at
        its expiry; this covers the time until the next refresh)."""
        return self.expires_at is None or self.expires_at > now


NO_BANS: Mapping[str, Ban] = MappingProxyType({})


MODERATION_DEADLINE_DEFAULT_MS = 500
MODERATION_DEADLINE_MIN_MS = 10
MODERATION_DEADLINE_MAX_MS = 5_000
"""A hook's deadline is capped: a send waits for it while the sender waits for its answer."""
RECALL_WINDOW_MAX_S = 7 * 86_400
"""The longest recall window a tenant may set (a week)."""


@dataclass(frozen=True, slots=True)
class ModerationHook:
    """A tenant's moderation hook: where each client message is POSTed before it is
    stored, the ``whsec_`` secret its requests are signed with, how long a logic node
    waits for the answer, and whether a hook that cannot answer lets messages through
    (``fail_open``) or refuses them."""

    url: str
    secret: str
    deadline_ms: int
    fail_open: bool


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """What the data plane knows of one tenant. A quota of 0 means unlimited.

    ``database_url`` is set for a ``dedicated`` tenant: its messages live there.
    """

    id: str
    active: bool
    keys: tuple[TenantKey, ...]
    max_connections: int = 0
    messages_per_second: float = 0.0
    database_url: str | None = None
    commands_per_second: float | None = None
    """Per connection, every command; None: the gateway's default (0 = unlimited)."""
    account_commands_per_second: float | None = None
    """Per account and gateway, every command; None: the gateway's default."""
    logins_per_second: float | None = None
    """Logins of the tenant per gateway; None: the gateway's default."""
    bans: Mapping[str, Ban] = field(default_factory=lambda: NO_BANS, hash=False)
    """Banned accounts, by account."""
    moderation: ModerationHook | None = None
    """The tenant's moderation hook; None: messages are stored unchecked."""
    recall_window_s: float | None = None
    """How long its users may recall a message; None: the logic node's default."""

    def ban_of(self, account: str, now: float) -> Ban | None:
        """The ban holding ``account`` at ``now``, or None."""
        ban = self.bans.get(account)
        return ban if ban is not None and ban.active(now) else None


def _optional_rate(value: object) -> float | None:
    """A rate override: absent or null is None (use the default), else a float."""
    if value is None:
        return None
    if isinstance(value, (int, float, str)):
        return float(value)
    raise ValueError(f"not a rate: {value!r}")


def parse_tenants(payload: object) -> dict[str, TenantInfo]:
    """Parse the internal endpoint's JSON; raises ValueError on a malformed answer."""
    if not isinstance(payload, dict) or not isinstance(payload.get("tenants"), list):
        raise ValueError("tenant list answer without a 'tenants' list")
    out: dict[str, TenantInfo] = {}
    for item in payload["tenants"]:
        keys = tuple(TenantKey(str(k["kid"]), str(k["secret"])) for k in item["keys"])
        quotas = item.get("quotas") or {}
        info = TenantInfo(
            id=str(item["id"]),
            active=item["status"] == "active",
            keys=keys,
            max_connections=int(quotas.get("max_connections") or 0),
            messages_per_second=float(quotas.get("messages_per_second") or 0.0),
            commands_per_second=_optional_rate(quotas.get("commands_per_second")),
            account_commands_per_second=_optional_rate(quotas.get("account_commands_per_second")),
            logins_per_second=_optional_rate(quotas.get("logins_per_second")),
            database_url=(
                str(item["database_url"])
                if item.get("isolation") == "dedicated" and item.get("database_url")
                else None
            ),
            bans=_parse_bans(item.get("bans") or []),
            moderation=_parse_moderation(item.get("moderation")),
            recall_window_s=_optional_rate(item.get("recall_window_s")),
        )
        out[info.id] = info
    return out


def _parse_bans(items: list[dict[str, object]]) -> Mapping[str, Ban]:
    if not items:
        return NO_BANS
    bans: dict[str, Ban] = {}
    for item in items:
        expires = item.get("expires_at")
        ban = Ban(
            account=str(item["account"]),
            expires_at=float(expires) if isinstance(expires, (int, float)) else None,
            reason=str(item.get("reason") or ""),
        )
        bans[ban.account] = ban
    return MappingProxyType(bans)


def _parse_moderation(item: object) -> ModerationHook | None:
    if item is None:
        return None
    if not isinstance(item, dict):
        raise ValueError(f"not a moderation hook: {item!r}")
    return ModerationHook(
        url=str(item["url"]),
        secret=str(item["secret"]),
        deadline_ms=int(item["deadline_ms"]),
        fail_open=bool(item["fail_open"]),
    )


TenantsListener = Callable[[Mapping[str, TenantInfo]], None]


class TenantDirectory:
    """Tenant lookups for token verification, refreshed from the control plane."""

    def __init__(
        self,
        control_url: str,
        cluster_secret: str,
        *,
        refresh_interval: float = 5.0,
        miss_refresh_interval: float = 0.1,
        timeout: float = 3.0,
    ) -> None:
        self._url = control_url.rstrip("/") + "/internal/v1/tenants"
        self._headers = {"X-Cirno-Cluster-Secret": cluster_secret}
        self._refresh_interval = refresh_interval
        self._miss_refresh_interval = miss_refresh_interval
        self._client = httpx.AsyncClient(timeout=timeout)
        self._tenants: dict[str, TenantInfo] = {}
        self._etag: str | None = None
        self._last_miss_refresh = 0.0
        self._lock = anyio.Lock()
        self._listeners: list[TenantsListener] = []
        self.loaded = False
        self._patience = Patience(log)  # quiet while the control plane may be starting

    def subscribe(self, listener: TenantsListener) -> None:
        """Call ``listener`` with every tenant after each refresh that changed them (not
        on a 304 nor on a failure). It runs inside the refresh and must not block."""
        self._listeners.append(listener)

    async def refresh(self) -> bool:
        """Fetch the tenant list; keeps the cache and returns False on any failure."""
        async with self._lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> bool:
        headers = dict(self._headers)
        if self._etag:
            headers["If-None-Match"] = self._etag
        try:
            response = await self._client.get(self._url, headers=headers)
            if response.status_code == 304:
                return True
            response.raise_for_status()
            tenants = parse_tenants(response.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self._patience.failed("tenant refresh from %s failed: %s", self._url, exc)
            return False
        self._patience.succeeded("tenant refresh from %s works again", self._url)
        self._tenants = tenants
        self._etag = response.headers.get("ETag")
        self.loaded = True
        for listener in self._listeners:
            try:
                listener(tenants)
            except Exception:  # one listener's bug must not stop the refreshes
                log.exception("tenant directory listener failed")
        return True

    async def run(self) -> None:
        """Refresh forever, every ``refresh_interval`` seconds."""
        while True:
            await self.refresh()
            await anyio.sleep(self._refresh_interval)

    def cached(self, tenant_id: str) -> TenantInfo | None:
        """The tenant as last fetched, without suspending or refreshing."""
        return self._tenants.get(tenant_id)

    async def lookup(self, tenant_id: str) -> TenantInfo | None:
        """The tenant, refreshing once early when it is not cached yet.

        Lookups that miss wait for the refresh in progress (one request to the control
        plane, not one per lookup) and then look again; a tenant that is still unknown
        causes at most one refresh per ``miss_refresh_interval``. A cached tenant is
        returned without suspending.
        """
        info = self._tenants.get(tenant_id)
        if info is not None:
            return info
        async with self._lock:
            info = self._tenants.get(tenant_id)
            if info is None:
                now = time.monotonic()
                if now - self._last_miss_refresh >= self._miss_refresh_interval:
                    self._last_miss_refresh = now
                    await self._refresh_locked()
                info = self._tenants.get(tenant_id)
        return info

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
