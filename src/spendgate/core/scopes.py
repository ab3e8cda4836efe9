"""Scopes: what spend is attributed to and limited by, defined once.

A scope type has one name everywhere in the API and in enforcement (``organization``,
``end_user`` …). The ledger stores two things about it:

* the ``spend_events`` column that attributes an event to it (``organization_id``);
* its name in the rollup tables (``org``, ``customer``). Those names are data already
  written to databases, so they stay as they are; this module maps between the two.

``team_member`` ids are ``team:user``; ``key_model`` / ``team_model`` ids are
``<key or team>:<model>`` (LiteLLM's ``model_max_budget`` and ``model_rpm_limit``). Tags
are attributed by the list column ``request_tags``, fanned out one rollup row per tag, so
``tag`` has a rollup name but no scalar ledger column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ROLLUP_NAMES",
    "ROLLUP_SCOPE_TYPES",
    "SCOPE_TYPES",
    "Scope",
    "ScopeType",
    "by_rollup",
    "scope_type",
]


@dataclass(frozen=True, slots=True)
class ScopeType:
    """One kind of scope.

    ``name``: the enforcement and API name (``organization``). ``ledger_column``: the
    ``spend_events`` column whose value is the scope id (``organization_id``), None when no
    single column attributes it. ``rollup``: its ``scope_type`` in the rollup tables
    (``org``), None when it is not rolled up.
    """

    name: str
    ledger_column: str | None
    rollup: str | None


def _table(*types: ScopeType) -> Mapping[str, ScopeType]:
    return MappingProxyType({t.name: t for t in types})


SCOPE_TYPES: Mapping[str, ScopeType] = _table(
    ScopeType("global", None, "global"),
    ScopeType("organization", "organization_id", "org"),
    ScopeType("team", "team_id", "team"),
    ScopeType("team_member", None, None),
    ScopeType("user", "user_id", "user"),
    ScopeType("key", "api_key", "key"),
    ScopeType("end_user", "end_user", "customer"),
    ScopeType("tag", None, "tag"),
    ScopeType("key_model", None, None),
    ScopeType("team_model", None, None),
    ScopeType("provider", "provider", None),
    ScopeType("deployment", "deployment_id", None),
)
"""Every scope type by name, in enforcement order."""

ROLLUP_SCOPE_TYPES: tuple[ScopeType, ...] = tuple(
    SCOPE_TYPES[name] for name in ("global", "key", "user", "team", "organization", "end_user", "tag")
)
"""The scope types kept in the rollups, in the rollup writers' order (``global`` first, ``tag`` last)."""

ROLLUP_NAMES: tuple[str, ...] = tuple(t.rollup for t in ROLLUP_SCOPE_TYPES if t.rollup is not None)
"""The rollup tables' ``scope_type`` values: ``global``, ``key``, ``user``, ``team``, ``org``,
``customer``, ``tag``."""

_BY_ROLLUP: Mapping[str, ScopeType] = MappingProxyType(
    dict(zip(ROLLUP_NAMES, ROLLUP_SCOPE_TYPES, strict=True))
)


def scope_type(name: str) -> ScopeType:
    """The scope type called ``name`` (``organization``).

    Raises:
        ValueError: no scope type has that name.
    """
    found = SCOPE_TYPES.get(name)
    if found is None:
        raise ValueError(f"unknown scope type {name!r}; expected one of {', '.join(SCOPE_TYPES)}")
    return found


def by_rollup(name: str) -> ScopeType:
    """The scope type whose rollup name is ``name`` (``org`` → ``organization``).

    Raises:
        ValueError: no scope type is rolled up under that name.
    """
    found = _BY_ROLLUP.get(name)
    if found is None:
        raise ValueError(f"unknown scope type {name!r}; choose from {', '.join(_BY_ROLLUP)}")
    return found


@dataclass(frozen=True, slots=True)
class Scope:
    """Something spend is attributed to and limited by: ``Scope("team", "t-1")``."""

    type: str
    id: str = ""

    def __post_init__(self) -> None:
        if self.type not in SCOPE_TYPES:
            raise ValueError(f"unknown scope type {self.type!r}; expected one of {', '.join(SCOPE_TYPES)}")

    @classmethod
    def team_member(cls, team_id: str, user_id: str) -> Scope:
        return cls("team_member", f"{team_id}:{user_id}")

    @classmethod
    def key_model(cls, key: str, model: str) -> Scope:
        return cls("key_model", f"{key}:{model}")

    @classmethod
    def team_model(cls, team_id: str, model: str) -> Scope:
        return cls("team_model", f"{team_id}:{model}")

    def __str__(self) -> str:
        return self.type if self.type == "global" else f"{self.type}:{self.id}"
