"""The gateway's logic links and the choice of a logic node per account.

Links come from ``CIRNO_LOGIC_ADDRS`` when it is set, else from the control plane's
registry (live, non-draining logic nodes, polled; a node that appears gets a link, one
that disappears loses it). Grayscale rules are polled too and take effect without a
restart.

Choice, per command (docs/design.md, "Network links"): the candidates are the links that
are up and whose node runs the command's service (:mod:`data_plane.cluster.services`;
every link for a command without one); among them the grayscale logic zone when a rule
names one and a node of that zone is up, then rendezvous hashing on ``tenant:account``,
so a node joining or leaving moves few accounts. When every node runs every service (the
default) the candidates are the same for every command: an account's commands all go to
one node.
No candidate means no pick, and the gateway answers as when no node is reachable.
``version`` changes whenever the outcome could change (a link up or down, new rules),
so :class:`LogicRoutes` caches a channel's picks until then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup, TaskStatus

from data_plane.cluster.grayscale import ClientFacts, GrayscaleRule, evaluate
from data_plane.cluster.patience import Patience
from data_plane.cluster.registry import RegistryClient, RegistryUnavailable
from data_plane.cluster.selection import rendezvous_pick
from data_plane.cluster.services import Service, service_of
from data_plane.gateway.logic_link import LogicLink
from data_plane.gateway.settings import GatewaySettings
from data_plane.metrics import LOGIC_LINKS
from data_plane.wire import LogicPacket

log = logging.getLogger(__name__)


class LogicPool:
    """Logic links of one gateway, kept in step with the registry."""

    def __init__(
        self,
        settings: GatewaySettings,
        registry: RegistryClient,
        on_packet: Callable[[LogicLink, LogicPacket, bytes], None],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_change`` is called whenever a link came up or went down."""
        self._settings = settings
        self._registry = registry
        self._on_packet = on_packet
        self._on_change = on_change
        self.links: dict[str, LogicLink] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}
        self.rules: list[GrayscaleRule] = []
        self.version = 0
        self.ready = anyio.Event()
        """Set while a link to a node running the login service is up (logins wait for
        it a while)."""
        self._tg: TaskGroup | None = None
        # Quiet while the control plane may still be starting.
        self._discovery_patience = Patience(log)
        self._rules_patience = Patience(log)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep links and rules current until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for host, port in self._settings.logic_addrs:
                self._add(host, port, zone="")
            if not self._settings.logic_addrs:
                tg.start_soon(self._discover)
            tg.start_soon(self._follow_rules)
            task_status.started()

    def _add(self, host: str, port: int, zone: str) -> None:
        assert self._tg is not None
        link = LogicLink(
            host,
            port,
            gateway_id=self._settings.gateway_id,
            cluster_secret=self._settings.cluster_secret,
            on_packet=self._on_packet,
            on_state=self._on_state,
            max_packet_size=self._settings.max_packet_size,
            zone=zone,
        )
        scope = anyio.CancelScope()
        self.links[link.address] = link
        self._scopes[link.address] = scope
        self._tg.start_soon(self._run_link, link, scope)

    async def _run_link(self, link: LogicLink, scope: anyio.CancelScope) -> None:
        with scope:
            await link.run()

    def _remove(self, address: str) -> None:
        self._scopes.pop(address).cancel()
        self.links.pop(address)
        self._on_state(None)

    async def _discover(self) -> None:
        while True:
            try:
                nodes = await self._registry.logic_nodes()
            except RegistryUnavailable as exc:
                self._discovery_patience.failed(
                    "logic node discovery: %s (keeping %d links)", exc, len(self.links)
                )
                nodes = None
            else:
                self._discovery_patience.succeeded("logic node discovery works again")
            if nodes is not None:
                wanted = {f"{n.host}:{n.port}": n for n in nodes}
                for address in list(self.links):
                    if address not in wanted:
                        log.info("logic node at %s left the registry", address)
                        self._remove(address)
                for address, node in wanted.items():
                    link = self.links.get(address)
                    if link is None:
                        log.info("logic node %s at %s joined", node.id, address)
                        self._add(node.host, node.port, node.zone)
                    elif link.zone != node.zone:
                        link.zone = node.zone
                        self._on_state(link)
            await anyio.sleep(self._settings.registry_poll_interval)

    async def _follow_rules(self) -> None:
        while True:
            try:
                rules = await self._registry.grayscale_rules()
            except RegistryUnavailable as exc:
                self._rules_patience.failed(
                    "grayscale rules: %s (keeping %d rules)", exc, len(self.rules)
                )
                rules = None
            else:
                self._rules_patience.succeeded("grayscale rules load again")
            if rules is not None:
                self.rules = rules
                self.version += 1
                log.info("grayscale: %d rules in force", len(rules))
            await anyio.sleep(self._settings.registry_poll_interval)

    def _on_state(self, link: LogicLink | None) -> None:
        self.version += 1
        up = [candidate for candidate in self.links.values() if candidate.ready]
        LOGIC_LINKS.set(len(up))
        if any(Service.LOGIN in candidate.services for candidate in up):
            self.ready.set()
        elif self.ready.is_set():
            self.ready = anyio.Event()
        self._on_change()

    def pick(self, facts: ClientFacts, service: str | None = None) -> LogicLink | None:
        """The link that serves ``facts``' account's commands of ``service`` now (any
        command when None), or None when no link that is up runs the service."""
        ready = [link for link in self.links.values() if link.ready]
        if service is not None:
            ready = [link for link in ready if service in link.services]
        if self.rules and ready:
            zone = evaluate(self.rules, facts).logic_zone
            if zone:
                in_zone = [link for link in ready if link.zone == zone]
                ready = in_zone or ready
        by_id = {link.node_id: link for link in ready}
        node_id = rendezvous_pick(by_id, f"{facts.tenant}:{facts.account}")
        return None if node_id is None else by_id[node_id]

    def routes(self, facts: ClientFacts) -> LogicRoutes:
        """The routes of one channel (whose facts never change)."""
        return LogicRoutes(self, facts)


_NO_SERVICE = object()
"""Not a service: the last pick of :class:`LogicRoutes` before it made one."""


class LogicRoutes:
    """One channel's picks by service, kept until the pool's ``version`` changes.

    Looked up once per forwarded packet: a hit on the service picked last costs a
    compare (most channels use one or two services, and an idle one has used only the
    login's), a hit on another one a dict lookup; a miss (the first command of a
    service, or a change in the pool) runs :meth:`LogicPool.pick`. The dict exists only
    once a second service was picked (a gateway holds many idle channels).
    """

    __slots__ = ("_facts", "_link", "_others", "_pool", "_service", "_version")

    def __init__(self, pool: LogicPool, facts: ClientFacts) -> None:
        self._pool = pool
        self._facts = facts
        self._version = pool.version
        self._service: object = _NO_SERVICE
        self._link: LogicLink | None = None
        self._others: dict[object, LogicLink] | None = None

    def link_for(self, command: str) -> LogicLink | None:
        """The link ``command`` goes to now, or None when no node that is up serves it."""
        service = service_of(command)
        pool = self._pool
        if self._version != pool.version:
            self._service, self._link, self._others = _NO_SERVICE, None, None
            self._version = pool.version
        if service == self._service:
            return self._link
        others = self._others
        link = others.get(service) if others is not None else None
        if link is None:
            link = pool.pick(self._facts, service)
            if link is None:
                return None
        if self._link is not None:  # the last pick stays at hand in the dict
            if others is None:
                others = self._others = {}
            others[self._service] = self._link
        self._service, self._link = service, link
        return link
