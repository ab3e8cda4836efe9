"""Scopes: what spend is attributed to and limited by, defined once.

A scope type has one name everywhere in the API and in enforcement (``organization``,
``end_user`` …). The ledger stores two things about it:

* the ``spend_events`` column that attributes an event to it (``organization_id``);
* its name in the rollup tables (``org``, ``customer``). Those names are data already
  written to databases, so they stay as they are; this module maps between the two.

``team_member`` ids are ``team:user``. Every entity that takes LiteLLM's per-model limits
(``model_max_budget``, ``model_rpm_limit``, ``model_tpm_limit``: keys, users, teams,
organizations, customers) has a per-model scope type named ``<owner>_model`` (``key_model``,
``end_user_model`` …) whose ids are ``<owner id>:<model group>`` (:meth:`Scope.per_model`);
its :attr:`ScopeType.model_of` names the owner, whose ledger column attributes its spend.
Tags are attributed by the list column ``request_tags``, fanned out one rollup row per tag,
so ``tag`` has a rollup name but no scalar ledger column.
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
    "model_owner",
    "scope_type",
]


@dataclass(frozen=True, slots=True)
class ScopeType:
    """One kind of scope.

    ``name``: the enforcement and API name (``organization``). ``ledger_column``: the
    ``spend_events`` column whose value is the scope id (``organization_id``), None when no
    single column attributes it. ``rollup``: its ``scope_type`` in the rollup tables
    (``org``), None when it is not rolled up. ``model_of``: for a per-model scope, the scope
    type of its owner (``key_model`` → ``key``), else None.
    """

    name: str
    ledger_column: str | None
    rollup: str | None
    model_of: str | None = None


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
    ScopeType("key_model", None, None, "key"),
    ScopeType("user_model", None, None, "user"),
    ScopeType("team_model", None, None, "team"),
    ScopeType("organization_model", None, None, "organization"),
    ScopeType("end_user_model", None, None, "end_user"),
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


def model_owner(name: str) -> ScopeType | None:
    """The owner's scope type of the per-model scope type ``name`` (``end_user_model`` →
    ``end_user``), None when ``name`` is no per-model scope type."""
    owner = SCOPE_TYPES[name].model_of if name in SCOPE_TYPES else None
    return None if owner is None else SCOPE_TYPES[owner]


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
    def per_model(cls, owner: Scope, model: str) -> Scope:
        """``owner``'s limits for one model group: ``Scope("user", "u-1")`` and ``gpt-4o`` →
        ``user_model:u-1:gpt-4o``.

        Raises:
            ValueError: ``owner``'s type takes no per-model limits.
        """
        return cls(f"{owner.type}_model", f"{owner.id}:{model}")

    @classmethod
    def key_model(cls, key: str, model: str) -> Scope:
        return cls("key_model", f"{key}:{model}")

    @classmethod
    def team_model(cls, team_id: str, model: str) -> Scope:
        return cls("team_model", f"{team_id}:{model}")

    def __str__(self) -> str:
        return self.type if self.type == "global" else f"{self.type}:{self.id}"
