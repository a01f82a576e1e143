"""``data_plane.cluster.grayscale``: buckets, matching, per-action evaluation, JSON form."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.cluster.grayscale import (
    ClientFacts,
    Decision,
    GrayscaleError,
    GrayscaleRule,
    bucket,
    evaluate,
    parse_version,
    rule_problems,
    rule_to_json,
    rules_from_json,
)

ACCOUNTS = st.text(min_size=1, max_size=64)


@given(tenant=st.text(max_size=64), account=ACCOUNTS)
def test_bucket_is_stable_and_in_range(tenant: str, account: str) -> None:
    first = bucket(tenant, account)
    assert 0 <= first < 100
    assert bucket(tenant, account) == first


def test_bucket_known_values_never_change() -> None:
    # Pinned: a change here would move every canary user in every running cluster.
    assert [bucket("acme", f"user{i}") for i in range(8)] == [74, 67, 87, 33, 32, 53, 4, 75]
    assert bucket("acme", "alice") == 88
    assert bucket("globex", "alice") != 88 or bucket("globex", "bob") != bucket("acme", "bob")


BUCKET_INPUTS = [
    ("acme", "alice"),
    ("acme", "user0"),
    ("globex", "alice"),
    ("", ""),
    ("tenant-ü", "账户"),
    ("a" * 64, "b" * 64),
]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "control_plane.md"


def documented_bucket(tenant: str, account: str) -> int:
    """The bucket computed from the words of docs/control_plane.md, not from the code."""
    digest = hashlib.blake2b(
        (tenant + "\0" + account).encode("utf-8"), digest_size=8, person=b"cirno-grayscale"
    ).digest()
    return int.from_bytes(digest, "big") % 100


@pytest.mark.parametrize(("tenant", "account"), BUCKET_INPUTS)
def test_bucket_is_what_the_docs_state(tenant: str, account: str) -> None:
    # A tenant reimplementing the bucket from the docs must put accounts where we do.
    assert bucket(tenant, account) == documented_bucket(tenant, account)


def test_the_docs_bucket_snippet_runs_and_agrees() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?digest = hashlib\.blake2b\(.*?)```", text, re.DOTALL)
    assert found is not None, "the bucket snippet is gone from docs/control_plane.md"
    snippet = textwrap.dedent(found.group(1))
    for tenant, account in BUCKET_INPUTS:
        scope: dict[str, Any] = {"hashlib": hashlib, "tenant": tenant, "account": account}
        exec(snippet, scope)  # our own documentation: running it is the point
        assert scope["bucket"] == bucket(tenant, account)


def test_the_person_parameter_changes_buckets() -> None:
    # Why the docs spell it out: without it most accounts land in other buckets.
    plain = [
        int.from_bytes(hashlib.blake2b(f"{t}\0{a}".encode(), digest_size=8).digest(), "big") % 100
        for t, a in BUCKET_INPUTS
    ]
    assert plain != [bucket(t, a) for t, a in BUCKET_INPUTS]


@settings(max_examples=10, deadline=None)
@given(tenant=st.sampled_from(["acme", "globex", "t-1"]), offset=st.integers(0, 10**6))
def test_ten_percent_rule_takes_about_ten_percent(tenant: str, offset: int) -> None:
    rule = GrayscaleRule(id="canary", priority=1, tenant=tenant, percent=10, gateway_pool="c")
    accounts = [f"acc{offset + i}" for i in range(10_000)]
    hits = sum(
        evaluate([rule], ClientFacts(tenant, account)).gateway_pool == "c" for account in accounts
    )
    assert 850 <= hits <= 1150, hits  # 10% ± 1.5 points (binomial sd is 0.3 points)


def test_raising_the_percent_only_adds_accounts() -> None:
    accounts = [f"user{i}" for i in range(2_000)]

    def chosen(percent: float) -> set[str]:
        rule = GrayscaleRule(id="r", priority=1, percent=percent, gateway_pool="c")
        return {a for a in accounts if rule.matches(ClientFacts("acme", a))}

    assert chosen(5) <= chosen(10) <= chosen(50) <= chosen(100)
    assert chosen(0) == set()
    assert chosen(100) == set(accounts)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1.10.0", (1, 10)),
        ("1.9.3", (1, 9, 3)),
        ("v2", (2,)),
        ("1.2.0", (1, 2)),
        ("1.2.3-beta.1", (1, 2, 3)),
        ("3.0.0+build7", (3,)),
        ("0", (0,)),
        ("", None),
        ("1..2", None),
        ("abc", None),
        ("1.x", None),
        (None, None),
    ],
)
def test_parse_version(text: str | None, parsed: tuple[int, ...] | None) -> None:
    assert parse_version(text) == parsed


def test_versions_compare_numerically() -> None:
    rule = GrayscaleRule(id="new", priority=1, min_version="1.10.0", logic_zone="z")
    facts = ClientFacts("acme", "bob")
    assert rule.matches(_with(facts, version="1.10.0"))
    assert rule.matches(_with(facts, version="1.10"))
    assert rule.matches(_with(facts, version="2.0.0"))
    assert not rule.matches(_with(facts, version="1.9.3"))
    assert not rule.matches(_with(facts, version=None))
    assert not rule.matches(_with(facts, version="garbage"))
    ranged = GrayscaleRule(
        id="r", priority=1, min_version="1.2", max_version="1.4.9", logic_zone="z"
    )
    assert [ranged.matches(_with(facts, version=v)) for v in ("1.1.9", "1.2", "1.4.9", "1.5")] == [
        False,
        True,
        True,
        False,
    ]


def _with(facts: ClientFacts, **changes: Any) -> ClientFacts:
    return dataclasses.replace(facts, **changes)


def test_every_condition_must_hold() -> None:
    rule = GrayscaleRule(
        id="all",
        priority=1,
        tenant="acme",
        accounts=("alice", "bob"),
        platforms=("iOS",),
        regions=("eu",),
        gateway_pool="canary",
    )
    good = ClientFacts("acme", "alice", platform="ios", region="eu")
    assert rule.matches(good)
    assert not rule.matches(_with(good, tenant="globex"))
    assert not rule.matches(_with(good, account="carol"))
    assert not rule.matches(_with(good, platform="android"))
    assert not rule.matches(_with(good, platform=None))
    assert not rule.matches(_with(good, region="us"))
    assert not rule.matches(_with(good, region=None))


def test_actions_are_decided_independently_by_priority() -> None:
    facts = ClientFacts("acme", "alice", version="2.0", platform="web", region="eu")
    zone_only = GrayscaleRule(id="zone", priority=1, tenant="acme", logic_zone="z-eu-2")
    pool_late = GrayscaleRule(id="pool", priority=5, tenant="acme", gateway_pool="canary")
    shadowed = GrayscaleRule(
        id="shadow", priority=9, tenant="acme", gateway_pool="beta", logic_zone="z-x"
    )
    decision = evaluate([shadowed, pool_late, zone_only], facts)
    assert decision == Decision(
        gateway_pool="canary",
        logic_zone="z-eu-2",
        rule_id="zone",
        pool_rule_id="pool",
        zone_rule_id="zone",
    )


def test_disabled_and_non_matching_rules_are_skipped() -> None:
    facts = ClientFacts("acme", "alice")
    off = GrayscaleRule(id="off", priority=1, tenant="acme", enabled=False, gateway_pool="x")
    other = GrayscaleRule(id="other", priority=2, tenant="globex", gateway_pool="y")
    on = GrayscaleRule(id="on", priority=3, tenant="acme", gateway_pool="z")
    assert evaluate([off, other, on], facts).gateway_pool == "z"
    assert evaluate([off, other], facts) == Decision()
    assert evaluate([], facts) == Decision()


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (GrayscaleRule(id="a", priority=1, tenant="acme"), "action"),
        (GrayscaleRule(id="a", priority=1, gateway_pool="c"), "condition"),
        (GrayscaleRule(id="a", priority=1, percent=101, gateway_pool="c"), "percent"),
        (GrayscaleRule(id="a", priority=1, percent=-1, gateway_pool="c"), "percent"),
        (GrayscaleRule(id="a", priority=1, percent=float("nan"), gateway_pool="c"), "percent"),
        (
            GrayscaleRule(id="a", priority=1, min_version="2", max_version="1.9", logic_zone="z"),
            "greater",
        ),
        (GrayscaleRule(id="a", priority=1, min_version="x", logic_zone="z"), "min_version"),
    ],
)
def test_rule_problems(rule: GrayscaleRule, problem: str) -> None:
    assert any(problem in text for text in rule_problems(rule))


RULES = st.builds(
    GrayscaleRule,
    id=st.text(alphabet="abcdefgh", min_size=1, max_size=8),
    priority=st.integers(-1000, 1000),
    enabled=st.booleans(),
    tenant=st.one_of(st.none(), st.sampled_from(["acme", "globex"])),
    accounts=st.lists(ACCOUNTS, max_size=3).map(tuple),
    percent=st.one_of(st.none(), st.floats(0, 100)),
    min_version=st.one_of(st.none(), st.sampled_from(["1.0", "1.2.3"])),
    max_version=st.one_of(st.none(), st.sampled_from(["2.0", "9.9.9"])),
    platforms=st.lists(st.sampled_from(["ios", "android", "web"]), max_size=2).map(tuple),
    regions=st.lists(st.sampled_from(["eu", "us"]), max_size=2).map(tuple),
    gateway_pool=st.one_of(st.none(), st.just("canary")),
    logic_zone=st.one_of(st.none(), st.just("z2")),
).filter(lambda rule: not rule_problems(rule))


@given(st.lists(RULES, max_size=6))
def test_json_round_trip(rules: list[GrayscaleRule]) -> None:
    document = json.loads(json.dumps({"rules": [rule_to_json(rule) for rule in rules]}))
    parsed = rules_from_json(document)
    assert sorted(parsed, key=lambda r: (r.priority, r.id)) == parsed
    assert sorted(map(repr, parsed)) == sorted(map(repr, rules))
    facts = ClientFacts("acme", "alice", version="1.5", platform="ios", region="eu")
    assert evaluate(parsed, facts) == evaluate(rules, facts)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "rules",
        {"rules": "x"},
        {"nope": []},
        {"rules": [1]},
        {"rules": [{"priority": 1, "tenant": "a", "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": "1", "tenant": "a", "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": True, "tenant": "a", "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": 1, "tenant": 5, "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": 1, "accounts": "bob", "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": 1, "percent": "10", "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": 1, "enabled": 1, "tenant": "a", "gateway_pool": "c"}]},
        {"rules": [{"id": "a", "priority": 1, "tenant": "acme"}]},
    ],
)
def test_malformed_documents_raise(payload: object) -> None:
    with pytest.raises(GrayscaleError):
        rules_from_json(payload)


def test_bare_list_and_unknown_keys_are_accepted() -> None:
    rules = rules_from_json(
        [{"id": "a", "priority": 2, "tenant": "acme", "gateway_pool": "c", "future": 1}]
    )
    assert rules == [GrayscaleRule(id="a", priority=2, tenant="acme", gateway_pool="c")]
