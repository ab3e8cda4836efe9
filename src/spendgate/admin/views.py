"""How the management API shows entities: rows → JSON with LiteLLM's field names and USD
amounts as exact JSON numbers (from integer nano-USD; never a float).

One function per entity (``keys_out``, ``users_out``, ``teams_out`` …), each reading what
it shows beside the row (budget windows, members, teams) through the
:class:`~spendgate.entities.repository.EntityRepository`, so every handler shows an
entity the same way and no handler module needs another's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from spendgate.admin.entity_spend import EntitySpend, SpendAt, WindowSpend, entity_spend, profile_reset_at
from spendgate.core.money import usd_text
from spendgate.core.scopes import ScopeType
from spendgate.entities.codec import decode_limits, nanos
from spendgate.entities.keys import KEY_SCOPE
from spendgate.entities.repository import EntityRepository
from spendgate.entities.service import CUSTOMERS, INTERNAL_METADATA, ORGANIZATIONS, TEAMS, USERS
from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

T = TypeVar("T")

__all__ = [
    "audit_out",
    "budget_row",
    "customers_out",
    "key_out",
    "keys_out",
    "limits_out",
    "membership_out",
    "memberships_out",
    "organizations_out",
    "page_of",
    "public_metadata",
    "spend_json",
    "teams_out",
    "usd",
    "users_out",
    "windows_json",
    "windows_out",
]


def page_of(rows: list[T], page: int | None, size: int) -> list[T]:
    """One page of a list endpoint's rows (all of them without ``page``)."""
    return rows if page is None else rows[(page - 1) * size : page * size]


def usd(amount: int | None) -> orjson.Fragment | None:
    """Integer nano-USD → an exact JSON number (``12.5``, ``0.000000001``), no float involved."""
    if amount is None:
        return None
    return orjson.Fragment(usd_text(amount).encode())


def public_metadata(value: dict[str, Any] | None) -> dict[str, Any]:
    """Stored metadata without spendgate's internal keys."""
    return {k: v for k, v in (value or {}).items() if k not in INTERNAL_METADATA}


def _model_budget_out(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = {}
    for model, cfg in value.items():
        cfg = cfg if isinstance(cfg, dict) else {}
        out[model] = {
            "max_budget": usd(cfg.get("max_budget_nanos")),
            "budget_duration": cfg.get("budget_duration"),
            "tpm_limit": cfg.get("tpm_limit"),
            "rpm_limit": cfg.get("rpm_limit"),
        }
    return out


def limits_out(row: Any) -> dict[str, Any]:
    """The budget and rate-limit fields of ``row``, with USD amounts."""
    metadata = getattr(row, "metadata_", None) or {}
    out: dict[str, Any] = {
        "max_budget": usd(row.max_budget_nanos),
        "soft_budget": usd(row.soft_budget_nanos),
        "budget_duration": row.budget_duration,
        "tpm_limit": row.tpm_limit,
        "rpm_limit": row.rpm_limit,
        "tpd_limit": row.tpd_limit,
        "max_parallel_requests": row.max_parallel_requests,
        "model_max_budget": _model_budget_out(row.model_max_budget),
    }
    if hasattr(row, "metadata_"):
        out["model_rpm_limit"] = metadata.get("model_rpm_limit")
        out["model_tpm_limit"] = metadata.get("model_tpm_limit")
    return out


def audit_out(row: Any) -> dict[str, Any]:
    return {
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "created_by": row.created_by,
        "updated_by": row.updated_by,
    }


def budget_row(budget: Budget | None, at: SpendAt | None = None) -> dict[str, Any] | None:
    """A budget profile as JSON (LiteLLM ``litellm_budget_table``); with ``at``, its
    ``budget_reset_at`` (:func:`~spendgate.admin.entity_spend.profile_reset_at`)."""
    if budget is None:
        return None
    out: dict[str, Any] = {
        "budget_id": budget.budget_id,
        **limits_out(budget),
        "allowed_models": budget.allowed_models,
        "created_at": budget.created_at,
        "updated_at": budget.updated_at,
        "created_by": budget.created_by,
        "updated_by": budget.updated_by,
    }
    if at is not None:
        out["budget_reset_at"] = profile_reset_at(budget, at)
    return out


async def windows_out(
    repo: EntityRepository, scope: ScopeType | None, ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """``budget_limits`` of each scope id, as JSON."""
    assert scope is not None
    return _windows_json(await repo.windows(scope.name, ids))


def _windows_json(rows: dict[str, list[BudgetWindow]]) -> dict[str, list[dict[str, Any]]]:
    return {
        sid: [{"budget_duration": w.budget_duration, "max_budget": usd(w.max_budget_nanos)} for w in ws]
        for sid, ws in rows.items()
    }


# -- spend ------------------------------------------------------------------------------------


def _window_spend_json(w: WindowSpend) -> dict[str, Any]:
    out: dict[str, Any] = {
        "budget_duration": w.budget_duration,
        "max_budget": usd(w.max_nanos),
        "spend": usd(w.spend_nanos),
        "remaining": usd(w.remaining_nanos),
        "budget_reset_at": w.reset_at,
        "period_start": None if w.reset_at is None else w.period.start,
        "timezone": w.tz,
    }
    if w.model is not None:
        out["model"] = w.model
    return out


def spend_json(s: EntitySpend) -> dict[str, Any]:
    """An entity's spend fields: ``spend`` (since its ``budget_duration`` window last reset;
    lifetime without one) and ``budget_reset_at`` (when it next resets), ``lifetime_spend``
    (also as LiteLLM's ``total_spend``), ``soft_budget_reached`` and ``budget_windows``."""
    return {
        "spend": usd(s.spend_nanos),
        "budget_reset_at": s.reset_at,
        "lifetime_spend": usd(s.lifetime_nanos),
        "total_spend": usd(s.lifetime_nanos),
        "soft_budget_reached": s.soft_budget_reached,
        "budget_windows": [_window_spend_json(w) for w in s.windows],
    }


async def _spend_out(
    repo: EntityRepository,
    scope: ScopeType | None,
    rows: Sequence[Any],
    ident: Callable[[Any], str],
    windows: dict[str, list[BudgetWindow]],
    at: SpendAt | None,
) -> dict[str, dict[str, Any]]:
    """Each row's spend fields by id (empty when ``at`` is None: the view shows no spend)."""
    if at is None:
        return {ident(r): {} for r in rows}
    assert scope is not None
    profiles = await repo.budgets([b for r in rows if (b := getattr(r, "budget_id", None))])
    specs = [
        (
            ident(r),
            decode_limits(r, profiles.get(getattr(r, "budget_id", None) or ""), windows[ident(r)]),
        )
        for r in rows
    ]
    spent = await entity_spend(repo, scope, specs, at)
    return {sid: spend_json(s) for sid, s in spent.items()}


def windows_json(windows: list[Any] | None) -> list[dict[str, Any]]:
    """``budget_limits`` as a request gave them, shown as stored."""
    return [
        {"budget_duration": w.budget_duration, "max_budget": usd(nanos(w.max_budget))} for w in windows or ()
    ]


# -- keys -----------------------------------------------------------------------------------


def key_out(vk: VirtualKey, windows: list[dict[str, Any]]) -> dict[str, Any]:
    """A key as JSON, with LiteLLM's field names and USD amounts."""
    metadata = vk.metadata_ or {}
    return {
        "token": vk.token,
        "key_id": vk.key_id,
        "key_name": vk.key_name,
        "key_alias": vk.key_alias,
        "expires": vk.expires,
        "models": vk.models or [],
        **limits_out(vk),
        "budget_limits": windows,
        "user_id": vk.user_id,
        "team_id": vk.team_id,
        "organization_id": vk.organization_id,
        "end_user_id": vk.end_user_id,
        "budget_id": vk.budget_id,
        "metadata": public_metadata(vk.metadata_),
        "tags": vk.tags or [],
        "blocked": vk.blocked,
        "temp_budget_increase": usd(metadata.get("temp_budget_increase_nanos")),
        "temp_budget_expiry": metadata.get("temp_budget_expiry"),
        "last_active": vk.last_active,
        **audit_out(vk),
    }


async def keys_out(
    repo: EntityRepository, rows: list[VirtualKey], *, spend: SpendAt | None = None
) -> list[dict[str, Any]]:
    """Keys as JSON; with ``spend``, each with its spend fields (:func:`spend_json`)."""
    stored = await repo.windows(KEY_SCOPE.name, [vk.key_id for vk in rows])
    windows = _windows_json(stored)
    spent = await _spend_out(repo, KEY_SCOPE, rows, _key_id, stored, spend)
    return [{**key_out(vk, windows[vk.key_id]), **spent[vk.key_id]} for vk in rows]


def _key_id(vk: VirtualKey) -> str:
    return vk.key_id


# -- users, teams, memberships ---------------------------------------------------------------


async def users_out(
    repo: EntityRepository, users: list[User], *, spend: SpendAt | None = None
) -> list[dict[str, Any]]:
    """Users as JSON; with ``spend``, each with its spend fields (:func:`spend_json`)."""
    ids = [u.user_id for u in users]
    assert USERS.scope is not None
    stored = await repo.windows(USERS.scope.name, ids)
    windows = _windows_json(stored)
    spent = await _spend_out(repo, USERS.scope, users, lambda u: str(u.user_id), stored, spend)
    teams = await repo.team_ids_of_users(ids)
    return [
        {
            "user_id": u.user_id,
            "user_email": u.user_email,
            "user_alias": u.user_alias,
            "user_role": u.user_role,
            "organization_id": u.organization_id,
            "models": u.models or [],
            **limits_out(u),
            "budget_limits": windows[u.user_id],
            "metadata": public_metadata(u.metadata_),
            "blocked": u.blocked,
            "teams": teams[u.user_id],
            **audit_out(u),
            **spent[u.user_id],
        }
        for u in users
    ]


async def teams_out(
    repo: EntityRepository, teams: list[Team], *, spend: SpendAt | None = None
) -> list[dict[str, Any]]:
    """Teams as JSON; with ``spend``, each with its spend fields (:func:`spend_json`)."""
    ids = [t.team_id for t in teams]
    assert TEAMS.scope is not None
    stored = await repo.windows(TEAMS.scope.name, ids)
    windows = _windows_json(stored)
    spent = await _spend_out(repo, TEAMS.scope, teams, lambda t: str(t.team_id), stored, spend)
    members = await repo.team_members(ids)
    out = []
    for team in teams:
        metadata = team.metadata_ or {}
        out.append(
            {
                "team_id": team.team_id,
                "team_alias": team.team_alias,
                "organization_id": team.organization_id,
                "models": team.models or [],
                **limits_out(team),
                "budget_limits": windows[team.team_id],
                "budget_id": team.budget_id,
                "metadata": public_metadata(team.metadata_),
                "tags": metadata.get("tags") or [],
                "blocked": team.blocked,
                "members_with_roles": [
                    {"user_id": user_id, "role": role, "user_email": email}
                    for user_id, role, email in members[team.team_id]
                ],
                **audit_out(team),
                **spent[team.team_id],
            }
        )
    return out


def membership_out(m: TeamMembership, budget: Budget | None, at: SpendAt | None = None) -> dict[str, Any]:
    """A team membership; with ``at``, the member budget's ``budget_reset_at`` too."""
    out: dict[str, Any] = {
        "user_id": m.user_id,
        "team_id": m.team_id,
        "role": m.role,
        "budget_id": m.budget_id,
        "max_budget_in_team": usd(budget.max_budget_nanos) if budget else None,
        "litellm_budget_table": budget_row(budget, at),
    }
    if at is not None:
        out["budget_reset_at"] = None if budget is None else profile_reset_at(budget, at)
    return out


async def memberships_out(
    repo: EntityRepository, rows: list[TeamMembership], at: SpendAt | None = None
) -> list[dict[str, Any]]:
    budgets = await repo.budgets([m.budget_id for m in rows if m.budget_id])
    return [membership_out(m, budgets.get(m.budget_id) if m.budget_id else None, at) for m in rows]


# -- organizations, customers ------------------------------------------------------------------


async def organizations_out(
    repo: EntityRepository, orgs: list[Organization], *, spend: SpendAt | None = None
) -> list[dict[str, Any]]:
    """Organizations as JSON; with ``spend``, each with its spend fields (:func:`spend_json`)."""
    ids = [o.organization_id for o in orgs]
    assert ORGANIZATIONS.scope is not None
    stored = await repo.windows(ORGANIZATIONS.scope.name, ids)
    windows = _windows_json(stored)
    spent = await _spend_out(repo, ORGANIZATIONS.scope, orgs, lambda o: str(o.organization_id), stored, spend)
    teams = await repo.organization_teams(ids)
    members = await repo.organization_members(ids)
    return [
        {
            "organization_id": o.organization_id,
            "organization_alias": o.organization_alias,
            "budget_id": o.budget_id,
            "models": o.models or [],
            **limits_out(o),
            "budget_limits": windows[o.organization_id],
            "metadata": public_metadata(o.metadata_),
            "blocked": o.blocked,
            "teams": teams[o.organization_id],
            "members": [
                {"user_id": user_id, "user_role": role} for user_id, role in members[o.organization_id]
            ],
            **audit_out(o),
            **spent[o.organization_id],
        }
        for o in orgs
    ]


async def customers_out(
    repo: EntityRepository, rows: list[EndCustomer], *, spend: SpendAt | None = None
) -> list[dict[str, Any]]:
    """Customers as JSON; with ``spend``, each with its spend fields (:func:`spend_json`)."""
    assert CUSTOMERS.scope is not None
    stored = await repo.windows(CUSTOMERS.scope.name, [c.user_id for c in rows])
    windows = _windows_json(stored)
    spent = await _spend_out(repo, CUSTOMERS.scope, rows, lambda c: str(c.user_id), stored, spend)
    budgets = await repo.budgets([c.budget_id for c in rows if c.budget_id])
    return [
        {
            "user_id": c.user_id,
            "alias": c.alias,
            "team_id": c.team_id,
            "organization_id": c.organization_id,
            "blocked": c.blocked,
            "budget_id": c.budget_id,
            "allowed_model_region": c.allowed_model_region,
            "default_model": c.default_model,
            "models": c.models or [],
            **limits_out(c),
            "budget_limits": windows[c.user_id],
            "metadata": public_metadata(c.metadata_),
            "litellm_budget_table": budget_row(budgets.get(c.budget_id) if c.budget_id else None),
            **audit_out(c),
            **spent[c.user_id],
        }
        for c in rows
    ]
