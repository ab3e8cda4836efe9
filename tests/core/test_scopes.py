"""The one definition of scope types: names, ledger columns and rollup names agree."""

from __future__ import annotations

import pytest
from sqlalchemy import String, inspect

from spendgate.core.scopes import (
    ROLLUP_NAMES,
    ROLLUP_SCOPE_TYPES,
    SCOPE_TYPES,
    Scope,
    by_rollup,
    model_owner,
    scope_type,
)
from spendgate.stores.database.models import AlertRow, SpendEventRow


def test_every_scope_type_is_defined_once_by_its_name() -> None:
    assert list(SCOPE_TYPES) == [
        "global",
        "organization",
        "team",
        "team_member",
        "user",
        "key",
        "end_user",
        "tag",
        "key_model",
        "user_model",
        "team_model",
        "organization_model",
        "end_user_model",
        "provider",
        "deployment",
    ]
    assert all(name == t.name for name, t in SCOPE_TYPES.items())


def test_rollup_names_are_the_stored_values() -> None:
    # These are data in existing databases: they never change.
    assert ROLLUP_NAMES == ("global", "key", "user", "team", "org", "customer", "tag")
    assert by_rollup("org") is SCOPE_TYPES["organization"]
    assert by_rollup("customer") is SCOPE_TYPES["end_user"]
    assert [by_rollup(n) for n in ROLLUP_NAMES] == list(ROLLUP_SCOPE_TYPES)
    with pytest.raises(ValueError, match="unknown scope type 'organization'"):
        by_rollup("organization")


def test_ledger_columns_exist_on_spend_events() -> None:
    columns = {c.key for c in inspect(SpendEventRow).columns}
    for t in SCOPE_TYPES.values():
        assert t.ledger_column is None or t.ledger_column in columns, t
    assert SCOPE_TYPES["organization"].ledger_column == "organization_id"
    assert SCOPE_TYPES["end_user"].ledger_column == "end_user"
    assert SCOPE_TYPES["key"].ledger_column == "api_key"


def test_scope_type_lookup_and_scope_values() -> None:
    assert scope_type("team").rollup == "team"
    with pytest.raises(ValueError, match="unknown scope type 'org'"):
        scope_type("org")
    with pytest.raises(ValueError, match="unknown scope type"):
        Scope("org", "o-1")
    assert str(Scope("global")) == "global"
    assert str(Scope.team_member("t-1", "u-1")) == "team_member:t-1:u-1"
    assert Scope.key_model("k", "gpt-4o") == Scope("key_model", "k:gpt-4o")
    assert Scope.team_model("t", "m").id == "t:m"


def test_every_entity_with_per_model_limits_has_its_per_model_scope() -> None:
    """Keys, users, teams, organizations and customers take model_max_budget /
    model_rpm_limit / model_tpm_limit; each has ``<owner>_model``, attributed by the owner's
    ledger column."""
    for owner in ("key", "user", "team", "organization", "end_user"):
        scope = Scope.per_model(Scope(owner, "o:1"), "llama3:8b")
        assert scope == Scope(f"{owner}_model", "o:1:llama3:8b")
        found = model_owner(scope.type)
        assert found is SCOPE_TYPES[owner] and found.ledger_column is not None
    assert Scope.per_model(Scope("end_user", "c"), "m") == Scope("end_user_model", "c:m")
    assert [t.name for t in SCOPE_TYPES.values() if t.model_of] == [
        "key_model",
        "user_model",
        "team_model",
        "organization_model",
        "end_user_model",
    ]
    assert model_owner("user") is None and model_owner("nope") is None
    for owner in ("global", "tag", "team_member", "provider"):
        with pytest.raises(ValueError, match="unknown scope type"):
            Scope.per_model(Scope(owner, "x"), "m")


def test_scope_type_names_fit_the_columns_that_store_them() -> None:
    """Alerts store any budget's scope type; the rollups only the rolled-up ones' names."""
    column_type = AlertRow.__table__.c.scope_type.type
    assert isinstance(column_type, String) and column_type.length is not None
    width = column_type.length
    assert all(len(name) <= width for name in SCOPE_TYPES)
    assert all(len(name) <= 16 for name in ROLLUP_NAMES)


def test_enforcement_reexports_the_scope() -> None:
    from spendgate.enforcement import Scope as EnforcementScope

    assert EnforcementScope is Scope
