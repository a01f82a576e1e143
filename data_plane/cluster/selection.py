"""Logic node choice: rendezvous (highest random weight) hashing on the account.

Every gateway computes the same owner for an account from the same node set, and a
node joining or leaving moves only the accounts it wins or held (docs/design.md, "Network links").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _score(node_id: str, key: str) -> int:
    digest = hashlib.blake2b(f"{node_id}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_pick(node_ids: Iterable[str], key: str) -> str | None:
    """The node with the highest score for ``key``, or None when there is none."""
    best: str | None = None
    best_score = -1
    for node_id in node_ids:
        score = _score(node_id, key)
        if score > best_score or (score == best_score and best is not None and node_id < best):
            best, best_score = node_id, score
    return best
