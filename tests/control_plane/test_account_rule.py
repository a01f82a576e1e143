"""The REST models validate accounts by the rule gateways apply (``identity.is_account``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from control_plane.models import TokenCreate
from control_plane.models.common import Account
from control_plane.models.grayscale import RuleFields
from data_plane.cluster import identity

ACCOUNT = TypeAdapter(Account)


def model_accepts(account: str) -> bool:
    try:
        ACCOUNT.validate_python(account)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("account", ["alice\n", "\nalice", "zero\u200bwidth", "c1\x9f"])
def test_models_refuse_what_gateways_refuse(account: str) -> None:
    assert not identity.is_account(account)
    with pytest.raises(ValidationError):
        TokenCreate.model_validate({"account": account})
    with pytest.raises(ValidationError):
        RuleFields.model_validate({"priority": 1, "accounts": ["bob", account]})
    assert RuleFields.model_validate({"priority": 1, "accounts": ["bob"]}).accounts == ["bob"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70) | st.sampled_from(["alice", "a" * 64, "a" * 65, "alice\n"]))
def test_models_and_gateways_agree_on_every_string(account: str) -> None:
    assert model_accepts(account) == identity.is_account(account)
