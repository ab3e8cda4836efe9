"""What a budget profile's users have spent, for ``/budget/info`` and ``/budget/list``.

A profile (LiteLLM's ``LiteLLM_BudgetTable``) is shared: keys, teams, organizations,
customers and tags point at it through ``budget_id``, and enforcement gives **each** of them
its own windows, built from the profile wherever the entity leaves a field unset
(:func:`spendgate.entities.codec.decode_limits`). So a profile has no counter of its own:
its ``spend`` is the total of the entities using it, each in its own current period, and
``used_by`` shows each of them exactly as its own info endpoint does
(:func:`spendgate.admin.views.spend_json` over :func:`spendgate.admin.entity_spend.entity_spend`).

Reads: one statement per kind of referrer (which rows point at the profiles), one for the
windows of each kind that has them, and one rollup read per scope type, whatever the
number of profiles or entities.

Left out: team and organization memberships. A member budget is enforced as a
``team_member`` scope, which is not rolled up (:mod:`spendgate.core.scopes`), and an
organization membership's profile is not enforced at all, so neither has a spend that can
be read from the rollups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from spendgate.admin.entity_spend import EntitySpend, SpendAt, entity_spend
from spendgate.admin.spend_lookup import chunks
from spendgate.admin.views import budget_row, spend_json, usd
from spendgate.core.periods import LIFETIME_START, period_for
from spendgate.core.scopes import ScopeType, scope_type
from spendgate.entities.codec import LimitSpec, decode_limits, model_start
from spendgate.entities.repository import EntityRepository
from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    OrganizationMembership,
    Tag,
    Team,
    TeamMembership,
    VirtualKey,
)

__all__ = ["REFERRERS", "WITHOUT_SPEND", "BudgetReferrer", "budgets_out"]

_BUCKET = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class BudgetReferrer:
    """One kind of entity that may use a profile: what ``used_by`` calls it (``type``), its table and
    id column, its scope type, and whether enforcement reads the entity's own fields and
    windows (a tag is limited by its profile alone: ``EntityReader.tag_limits``)."""

    kind: str
    model: type[Any]
    id_column: str
    scope: ScopeType
    own_limits: bool = True

    def ident(self, row: Any) -> str:
        return str(getattr(row, self.id_column))


REFERRERS: tuple[BudgetReferrer, ...] = (
    BudgetReferrer("key", VirtualKey, "key_id", scope_type("key")),
    BudgetReferrer("team", Team, "team_id", scope_type("team")),
    BudgetReferrer("organization", Organization, "organization_id", scope_type("organization")),
    BudgetReferrer("customer", EndCustomer, "user_id", scope_type("end_user")),
    BudgetReferrer("tag", Tag, "tag_name", scope_type("tag"), own_limits=False),
)
"""The entities shown in ``used_by``, in that order (then by id)."""

WITHOUT_SPEND: tuple[type[Any], ...] = (TeamMembership, OrganizationMembership)
"""Entities that may point at a profile but have no rolled-up spend (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class _UsedBy:
    """One entity using a profile: its ``used_by`` entry and its spend (None: not readable)."""

    budget_id: str
    entry: dict[str, Any]
    spend_nanos: int | None
    lifetime_nanos: int


async def budgets_out(repo: EntityRepository, budgets: Sequence[Budget], at: SpendAt) -> list[dict[str, Any]]:
    """Profiles as JSON (:func:`~spendgate.admin.views.budget_row`), each with ``spend``,
    ``lifetime_spend`` (USD, the sums over ``used_by``) and ``used_by``.

    ``spend`` is None when some entity's current spend cannot be read exactly (a tag whose
    window does not start and end on the rollups' 15-minute buckets)."""
    profiles = {b.budget_id: b for b in budgets}
    used: dict[str, list[_UsedBy]] = {b.budget_id: [] for b in budgets}
    for ref in REFERRERS:
        for user in await _used_by(repo, ref, profiles, at):
            used[user.budget_id].append(user)
    out = []
    for b in budgets:
        mine = used[b.budget_id]
        spends = [u.spend_nanos for u in mine]
        out.append(
            {
                **(budget_row(b, at) or {}),
                "spend": None if None in spends else usd(sum(s or 0 for s in spends)),
                "lifetime_spend": usd(sum(u.lifetime_nanos for u in mine)),
                "used_by": [u.entry for u in mine],
            }
        )
    return out


async def _used_by(
    repo: EntityRepository, ref: BudgetReferrer, profiles: dict[str, Budget], at: SpendAt
) -> list[_UsedBy]:
    """The entities of one kind that use one of ``profiles``, with their spend (one rollup read)."""
    rows = await _rows_using(repo, ref, list(profiles))
    if not rows:
        return []
    ids = [ref.ident(r) for r in rows]
    windows: dict[str, list[BudgetWindow]] = {i: [] for i in ids}
    if ref.own_limits:
        for chunk in chunks(ids):
            windows.update(await repo.windows(ref.scope.name, chunk))
    specs: list[tuple[str, LimitSpec]] = []
    readable: dict[str, bool] = {}
    for row, ident in zip(rows, ids, strict=True):
        spec = decode_limits(row if ref.own_limits else None, profiles[row.budget_id], windows[ident])
        # Without a ledger column (tags) spend is read from whole rollup buckets only.
        readable[ident] = ref.scope.ledger_column is not None or _whole_buckets(spec, at)
        specs.append((ident, spec if readable[ident] else LimitSpec()))
    spent = await entity_spend(repo, ref.scope, specs, at)
    out = []
    for row, ident in zip(rows, ids, strict=True):
        s, ok = spent[ident], readable[ident]
        entry = {"type": ref.kind, "id": ident, **_spend_fields(s, ok)}
        out.append(_UsedBy(row.budget_id, entry, s.spend_nanos if ok else None, s.lifetime_nanos))
    return out


def _spend_fields(s: EntitySpend, readable: bool) -> dict[str, Any]:
    if readable:
        return spend_json(s)
    return {
        **spend_json(s),
        "spend": None,
        "budget_reset_at": None,
        "soft_budget_reached": None,
        "spend_unreadable": "a tag's spend is rolled up in 15-minute buckets, and a window of "
        "this profile does not start and end on them",
    }


async def _rows_using(repo: EntityRepository, ref: BudgetReferrer, budget_ids: list[str]) -> list[Any]:
    """The rows of ``ref``'s table whose ``budget_id`` is one of ``budget_ids``, by id."""
    column = ref.model.budget_id
    rows: list[Any] = []
    for chunk in chunks(budget_ids):
        rows.extend(await repo.session.scalars(select(ref.model).where(column.in_(chunk))))
    return sorted(rows, key=ref.ident)


def _whole_buckets(spec: LimitSpec, at: SpendAt) -> bool:
    """Whether every window :func:`entity_spend` reads for ``spec`` starts and ends on a
    15-minute bucket (``spendgate.ledger.scope_spend`` reads a partial bucket from the
    events, which tags cannot be filtered by). The windows are ``entity_spend``'s:
    the main one, each ``budget_limits`` entry and each model budget with a ``max_budget``."""
    durations: list[tuple[str | None, str, datetime | None]] = [
        (spec.budget_duration, at.tz, spec.budget_start)
    ]
    durations += [(d, tz or at.tz, start) for d, _, tz, start in spec.started_windows()]
    for cfg in spec.model_max_budget.values():
        if isinstance(cfg, dict) and isinstance(cfg.get("max_budget_nanos"), int):
            raw = cfg.get("budget_duration")
            durations.append((raw if isinstance(raw, str) else None, at.tz, model_start(cfg)))
    for duration, tz, anchor in durations:
        period = period_for(duration or "lifetime", at.now, tz, anchor)
        for edge in (period.start, period.end):
            if (edge - LIFETIME_START) % _BUCKET:
                return False
    return True
