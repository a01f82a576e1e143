"""The gateway ↔ logic link: the client protocol plus a few meta keys.

A gateway dials every logic node over TCP frames (docs/protocol.md, "Gateway ↔ logic
link") and opens the link with a ``cluster.handshake`` request whose meta carries the
cluster secret and the gateway id; the logic node answers Success with its node id and
the services it runs (``services`` meta, comma-separated, see
:mod:`data_plane.cluster.services`; a node that sends none runs them all), or
Unauthorized and closes.

After that, every client packet travels as the same LogicPkt with the client's meta
removed, ``channel_id`` set to the client's channel, and the meta below attached by the
gateway (the logic node trusts it: only authenticated gateways can send). Responses
come back with the client's ``channel_id``; pushes carry the comma-separated channel
ids they are addressed to in the ``channels`` meta. The gateway strips every meta
before a packet reaches a client.
"""

from __future__ import annotations

from typing import Final

HANDSHAKE_COMMAND: Final = "cluster.handshake"
REFRESH_COMMAND: Final = "session.refresh"
"""Sent by a gateway for each live channel every refresh interval; never answered."""
FILL_COMMAND: Final = "sync.fill"
"""A gateway asking for the inbox rows ``from``..``to`` (meta) of the carrying channel's
account to be pushed again to that channel alone, then answered (see
:mod:`data_plane.gateway.sequencer`)."""
HEADS_COMMAND: Final = "sync.heads"
"""A gateway asking for the inbox heads of the comma-separated ``accounts`` (meta) of
the carrying channel's tenant; answered with ``heads`` (meta), aligned."""
INTERNAL_PREFIXES: Final = ("cluster.", "session.", "sync.", "server.")
"""Commands in these namespaces are the link's own: clients may not send them
(``server.*`` come from the control plane only, :mod:`data_plane.cluster.server_api`)."""
LOCATION_REFRESH_INTERVAL: Final = 60.0
LOCATION_TTL_SECONDS: Final = 180
"""Redis locations expire unless refreshed: three refresh intervals."""

META_SECRET: Final = "secret"
META_GATEWAY: Final = "gateway"
META_NODE: Final = "node"
META_TENANT: Final = "tenant"
META_ACCOUNT: Final = "account"
META_DEVICE: Final = "device"
META_CLIENT_VERSION: Final = "client_version"
META_CHANNELS: Final = "channels"
META_SERVICES: Final = "services"
META_SEQS: Final = "seqs"
"""On a push of a stored message: per channel of ``channels``, the message's sequence in
the inbox of that channel's account (aligned, comma-separated)."""
META_HEAD: Final = "head"
"""On a ``login.signin`` answer: the account's inbox head, read after the location was
stored (the gateway strips it)."""
META_FROM: Final = "from"
META_TO: Final = "to"
META_ACCOUNTS: Final = "accounts"
META_HEADS: Final = "heads"

LINK_MAX_PACKET_SIZE: Final = 16 * 1024 * 1024
"""Packets on the link may exceed the client limit (the logic node turns an over-large
answer into TooLarge for the client): one big packet never breaks the shared link."""

DEFAULT_DEVICE: Final = "default"
"""The device of a client that names none (every kim client): one location per account."""
