"""Grayscale rules: which gateway pool and which logic zone a client is sent to.

Theory of operation. A rule is a set of *conditions* (tenant, account list, account hash
bucket, client version range, platform, region) and up to two *actions* (a gateway pool,
used by the control plane's route answers, and a logic zone, used by gateways when they
pick a logic node). Every condition that is set must hold (AND); a condition left empty
matches everything, but a rule must set at least one condition and one action.

:func:`evaluate` decides each action independently: the gateway pool comes from the
first enabled rule, in ascending ``priority`` (then ``id``), that matches *and sets a
gateway pool*; the logic zone likewise. So a rule that only sets a logic zone never
stops a later rule from choosing the pool, and vice versa. ``Decision.rule_id`` names
the first rule that decided anything (``pool_rule_id`` / ``zone_rule_id`` say which rule
decided which action).

Percentages use a stable bucket: ``bucket(tenant, account)`` is 0..99 from BLAKE2b (never
Python's salted ``hash()``), so every process puts an account in the same bucket; a rule
with ``percent = p`` matches buckets ``< p`` (whole percents: 12.5 behaves like 13). Raising
a percentage only ever adds accounts, so a canary grows without reshuffling users.

Versions compare as dotted numbers (``1.10.0 > 1.9.3``, ``1.2 == 1.2.0``); an optional
leading ``v`` and a ``-suffix`` / ``+build`` are ignored. A client that sends no (or an
unparsable) version never matches a rule with a version bound.

This module is pure (no I/O, no FastAPI, no SQL): the control plane validates and
serves rules with it, and gateways evaluate the JSON of ``GET /internal/v1/grayscale``
with :func:`rules_from_json`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PERCENT_BUCKETS = 100
_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[-+].*)?$")
_BUCKET_PERSON = b"cirno-grayscale"


class GrayscaleError(ValueError):
    """A rule or a rules document is malformed; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """What is known about a client when a rule is evaluated."""

    tenant: str
    account: str
    version: str | None = None
    platform: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class GrayscaleRule:
    """One rule: conditions (all must hold) and actions (at least one)."""

    id: str
    priority: int
    enabled: bool = True
    tenant: str | None = None
    accounts: tuple[str, ...] = ()
    percent: float | None = None
    min_version: str | None = None
    max_version: str | None = None
    platforms: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    gateway_pool: str | None = None
    logic_zone: str | None = None

    def has_condition(self) -> bool:
        """Whether the rule restricts who it applies to at all."""
        return bool(
            self.tenant is not None
            or self.accounts
            or self.percent is not None
            or self.min_version is not None
            or self.max_version is not None
            or self.platforms
            or self.regions
        )

    def has_action(self) -> bool:
        """Whether the rule decides anything."""
        return bool(self.gateway_pool or self.logic_zone)

    def matches(self, facts: ClientFacts) -> bool:
        """Whether every condition the rule sets holds for ``facts`` (``enabled`` aside)."""
        if self.tenant is not None and facts.tenant != self.tenant:
            return False
        if self.accounts and facts.account not in self.accounts:
            return False
        if self.platforms and not _platform_in(facts.platform, self.platforms):
            return False
        if self.regions and facts.region not in self.regions:
            return False
        if self.percent is not None and bucket(facts.tenant, facts.account) >= self.percent:
            return False
        if self.min_version is not None or self.max_version is not None:
            return _version_in_range(facts.version, self.min_version, self.max_version)
        return True


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`evaluate`: ``None`` means "no rule decided this action"."""

    gateway_pool: str | None = None
    logic_zone: str | None = None
    rule_id: str | None = None
    pool_rule_id: str | None = None
    zone_rule_id: str | None = None


NO_DECISION = Decision()


def bucket(tenant: str, account: str) -> int:
    """The stable 0..99 bucket of an account of a tenant (same in every process)."""
    digest = hashlib.blake2b(
        f"{tenant}\x00{account}".encode(), digest_size=8, person=_BUCKET_PERSON
    ).digest()
    return int.from_bytes(digest, "big") % PERCENT_BUCKETS


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"1.10.0"`` → ``(1, 10)`` (trailing zeros dropped), or None when unparsable."""
    if text is None:
        return None
    found = _VERSION.match(text.strip())
    if found is None:
        return None
    parts = [int(part) for part in found.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _platform_in(platform: str | None, platforms: tuple[str, ...]) -> bool:
    wanted = (platform or "").lower()
    return bool(wanted) and any(p.lower() == wanted for p in platforms)


def _version_in_range(version: str | None, low: str | None, high: str | None) -> bool:
    parsed = parse_version(version)
    if parsed is None:
        return False
    low_v, high_v = parse_version(low), parse_version(high)
    if low_v is not None and parsed < low_v:
        return False
    return not (high_v is not None and parsed > high_v)


def rule_problems(rule: GrayscaleRule) -> list[str]:
    """Why ``rule`` is invalid (empty when it is fine); shared by the API and the parser."""
    problems: list[str] = []
    if not rule.has_action():
        problems.append("a rule needs an action: gateway_pool and/or logic_zone")
    if not rule.has_condition():
        problems.append(
            "a rule needs a condition: tenant, accounts, percent, version, platforms or regions"
        )
    if rule.percent is not None and not (
        math.isfinite(rule.percent) and 0 <= rule.percent <= PERCENT_BUCKETS
    ):
        problems.append("percent must be between 0 and 100")
    for name in ("min_version", "max_version"):
        value = getattr(rule, name)
        if value is not None and parse_version(value) is None:
            problems.append(f"{name} must be a dotted numeric version such as 1.10.0")
    low, high = parse_version(rule.min_version), parse_version(rule.max_version)
    if low is not None and high is not None and low > high:
        problems.append("min_version is greater than max_version")
    return problems


def evaluate(rules: Iterable[GrayscaleRule], facts: ClientFacts) -> Decision:
    """Decide the gateway pool and the logic zone of ``facts`` (see the module docstring).

    ``rules`` may come in any order; disabled rules are skipped.
    """
    pool: str | None = None
    zone: str | None = None
    pool_rule: str | None = None
    zone_rule: str | None = None
    first: str | None = None
    for rule in sorted(rules, key=_order):
        if not rule.enabled:
            continue
        wants_pool = pool is None and bool(rule.gateway_pool)
        wants_zone = zone is None and bool(rule.logic_zone)
        if not (wants_pool or wants_zone) or not rule.matches(facts):
            continue
        if wants_pool:
            pool, pool_rule = rule.gateway_pool, rule.id
        if wants_zone:
            zone, zone_rule = rule.logic_zone, rule.id
        first = first or rule.id
        if pool is not None and zone is not None:
            break
    if first is None:
        return NO_DECISION
    return Decision(pool, zone, first, pool_rule, zone_rule)


def _order(rule: GrayscaleRule) -> tuple[int, str]:
    return (rule.priority, rule.id)


# --- JSON form (``GET /internal/v1/grayscale``) ---------------------------------------


def rule_to_json(rule: GrayscaleRule) -> dict[str, Any]:
    """The JSON object :func:`rules_from_json` reads back into ``rule``."""
    return {
        "id": rule.id,
        "priority": rule.priority,
        "enabled": rule.enabled,
        "tenant": rule.tenant,
        "accounts": list(rule.accounts),
        "percent": rule.percent,
        "min_version": rule.min_version,
        "max_version": rule.max_version,
        "platforms": list(rule.platforms),
        "regions": list(rule.regions),
        "gateway_pool": rule.gateway_pool,
        "logic_zone": rule.logic_zone,
    }


def rules_from_json(payload: object) -> list[GrayscaleRule]:
    """Parse ``{"rules": [...]}`` (or a bare list) into rules sorted by priority.

    Unknown keys are ignored (newer control planes may add some). Raises
    :class:`GrayscaleError` on a malformed document or an invalid rule, so a gateway
    keeps its last good rules instead of applying half a document.
    """
    items = payload.get("rules") if isinstance(payload, Mapping) else payload
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise GrayscaleError("grayscale document without a 'rules' list")
    rules = [_rule_from_json(item, index) for index, item in enumerate(items)]
    return sorted(rules, key=_order)


def _rule_from_json(item: object, index: int) -> GrayscaleRule:
    if not isinstance(item, Mapping):
        raise GrayscaleError(f"rule #{index} is not an object")
    try:
        rule = GrayscaleRule(
            id=_str(item, "id"),
            priority=_int(item, "priority"),
            enabled=_bool(item, "enabled", default=True),
            tenant=_opt_str(item, "tenant"),
            accounts=_str_tuple(item, "accounts"),
            percent=_opt_float(item, "percent"),
            min_version=_opt_str(item, "min_version"),
            max_version=_opt_str(item, "max_version"),
            platforms=_str_tuple(item, "platforms"),
            regions=_str_tuple(item, "regions"),
            gateway_pool=_opt_str(item, "gateway_pool"),
            logic_zone=_opt_str(item, "logic_zone"),
        )
    except GrayscaleError as exc:
        raise GrayscaleError(f"rule #{index}: {exc}") from exc
    problems = rule_problems(rule)
    if problems:
        raise GrayscaleError(f"rule {rule.id!r}: {'; '.join(problems)}")
    return rule


def _str(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise GrayscaleError(f"{key!r} must be a non-empty string")
    return value


def _opt_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise GrayscaleError(f"{key!r} must be a string or null")
    return value or None


def _int(item: Mapping[str, Any], key: str) -> int:
    value = item.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise GrayscaleError(f"{key!r} must be an integer")
    return value


def _bool(item: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise GrayscaleError(f"{key!r} must be a boolean")
    return value


def _opt_float(item: Mapping[str, Any], key: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise GrayscaleError(f"{key!r} must be a number or null")
    return float(value)


def _str_tuple(item: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = item.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GrayscaleError(f"{key!r} must be a list of strings")
    return tuple(value)
