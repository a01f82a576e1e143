"""The logic node's registry membership and its message-id node number.

Message ids embed a 10-bit node number, so two live logic nodes must never share one.
Without ``CIRNO_ID_NODE`` a logic node leases its number from the control plane's
registry: it heartbeats until the registry grants one, then keeps heartbeating (which
also tells gateways where to dial it). The registry hands a number to another node only
after its lease expired, so the node refuses new messages once its own lease has
lapsed by its own clock (the control plane unreachable for longer than the lease), and
exits if the registry ever answers with a different number. Reads go on regardless.
"""

from __future__ import annotations

import logging
import time

import anyio

from data_plane.cluster.patience import Patience
from data_plane.cluster.registry import Lease, NodeState, RegistryClient, RegistryUnavailable
from data_plane.logic.settings import LogicSettings
from data_plane.storage.errors import MessageStoreUnavailable

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The registry gave this node's number to another node: the process must stop."""


class NodeMembership:
    """Heartbeats of one logic node and the validity of its node-number lease."""

    def __init__(self, settings: LogicSettings, registry: RegistryClient) -> None:
        self._settings = settings
        self._registry = registry
        self.id_node = settings.id_node
        self._static = settings.id_node is not None
        self._valid_until = float("inf") if self._static else 0.0
        self.link_port = settings.port
        self.registered = False
        """Whether the last heartbeat reached the registry (``/readyz``)."""
        self._patience = Patience(log)  # quiet while the control plane may be starting

    def state(self) -> NodeState:
        """This node's heartbeat."""
        s = self._settings
        return NodeState(
            id=s.node_id,
            role="logic",
            zone=s.zone,
            region=s.region,
            pool="",
            version="0.1.0",
            connections=0,
            capacity=1,
            link_addr=s.advertise or f"{s.host}:{self.link_port}",
        )

    async def acquire(self) -> int:
        """The node number: the configured one, or one leased (waits for the registry)."""
        if self.id_node is not None:
            return self.id_node
        while True:
            try:
                lease = await self._registry.heartbeat(self.state())
            except RegistryUnavailable as exc:
                self._patience.failed("waiting for a node-id lease: %s", exc)
            else:
                self._patience.succeeded("the registry answers again")
                self.registered = True
                if lease.id_node is not None:
                    self._accept(lease)
                    log.info("leased message-id node number %d", lease.id_node)
                    return lease.id_node
                log.warning("the registry has no free node number; retrying")
            await anyio.sleep(1.0)

    def _accept(self, lease: Lease) -> None:
        if self._static:
            return
        if self.id_node is not None and lease.id_node != self.id_node:
            raise LeaseLost(
                f"the registry answered node number {lease.id_node}, this node holds "
                f"{self.id_node}: stopping so two nodes never share one"
            )
        self.id_node = lease.id_node
        self._valid_until = lease.valid_until

    async def run(self) -> None:
        """Heartbeat forever, the first time at once (the node listens now: gateways can
        dial it, and ``/readyz`` waits for this); raises :class:`LeaseLost` if the number
        changed."""
        first = True
        while True:
            if not first:
                await anyio.sleep(self._settings.heartbeat_interval)
            first = False
            try:
                self._accept(await self._registry.heartbeat(self.state()))
            except RegistryUnavailable as exc:
                self.registered = False
                self._patience.failed("%s", exc)
            else:
                self.registered = True
                self._patience.succeeded("heartbeats reach the registry again")

    def check_writable(self) -> None:
        """Raise ``MessageStoreUnavailable`` while the lease has lapsed."""
        if time.monotonic() >= self._valid_until:
            raise MessageStoreUnavailable(
                "this node's message-id lease lapsed (control plane unreachable); retry"
            )
