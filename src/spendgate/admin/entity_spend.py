"""What an entity has spent, window by window, for the management API's entity views.

LiteLLM shows ``spend`` on keys, users, teams, organizations and customers: what the entity
spent since its ``budget_duration`` window last reset (its lifetime spend when it has no
duration). spendgate shows that, its ``lifetime_spend``, and the state of **every** budget
window that enforcement applies to it (``max_budget`` + ``budget_duration``, each
``budget_limits`` entry, each ``model_max_budget`` entry), read with the same limits
decoder as the gateway (:func:`spendgate.entities.codec.decode_limits`: a budget profile
fills what the entity leaves unset) and the same calendar (:mod:`spendgate.core.periods`,
in the window's own zone, else ``litellm_settings.timezone``, from the budget's start for a
duration that is no calendar unit). So a window shown here is
the window the enforcer counts, and its spend is the ledger's, from the rollups
(:func:`spendgate.ledger.scope_spend.scope_spend`), for every entity of a response at once.

A model budget (``model_max_budget``) is read as enforcement counts it: the entity's spend
served by the model group's deployments (:func:`spendgate.ledger.rebuild.served_spend`, the
enforcer's seed), so a group serving under another name (``gpt-4o`` → an Azure deployment)
shows what the gateway refuses at. That needs the router's map of group → deployment ids,
which the composition root gives (:attr:`SpendAt.served_by`); without it (the admin app run
alone: the CLI, a benchmark) a model window falls back to the rollups' ``model``, the model
that served the call, which equals the group only when the group serves under its own name.
A tag or the global scope has no per-model enforcement: read that way too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from spendgate.core.periods import LIFETIME_END, Period, Window, parse_window, period_for
from spendgate.core.scopes import ScopeType
from spendgate.entities.codec import LimitSpec, model_start
from spendgate.entities.repository import EntityRepository
from spendgate.ledger.rebuild import served_spend
from spendgate.ledger.scope_spend import PeriodSpend, SpendQuery, scope_spend
from spendgate.stores.database.models import Budget

__all__ = ["EntitySpend", "SpendAt", "WindowSpend", "entity_spend", "limited_windows", "profile_reset_at"]

_LIFETIME = Window("lifetime")


@dataclass(frozen=True, slots=True)
class SpendAt:
    """When spend is read (the request's time) and the default zone of budget calendars
    (``litellm_settings.timezone``)."""

    now: datetime
    tz: str = "UTC"
    served_by: Callable[[str], Sequence[str]] | None = None
    """A model group's deployment ids (the router's); None: model windows are read by the
    model that served (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class WindowSpend:
    """One budget window in its current period (money in nano-USD)."""

    budget_duration: str | None
    """As configured; None for a budget without a duration (lifetime)."""
    max_nanos: int | None
    effective_max_nanos: int | None
    """``max`` plus an unexpired ``temp_budget_increase`` (the main window only)."""
    spend_nanos: int
    period: Period
    tz: str
    model: str | None = None

    @property
    def remaining_nanos(self) -> int | None:
        """What may still be spent in this period (never below zero); None: unlimited."""
        if self.effective_max_nanos is None:
            return None
        return max(self.effective_max_nanos - self.spend_nanos, 0)

    @property
    def reset_at(self) -> datetime | None:
        """When the next period starts; None for a lifetime budget."""
        return None if self.period.end >= LIFETIME_END else self.period.end


@dataclass(frozen=True, slots=True)
class EntitySpend:
    """An entity's spend: ``spend`` (its ``budget_duration`` window, else lifetime),
    ``lifetime``, the soft-budget state and each budget window."""

    spend_nanos: int
    period: Period
    """The current period of ``spend``."""
    lifetime_nanos: int
    soft_budget_nanos: int | None
    windows: list[WindowSpend]

    @property
    def reset_at(self) -> datetime | None:
        """When ``spend`` starts again from zero; None without a ``budget_duration``."""
        return None if self.period.end >= LIFETIME_END else self.period.end

    @property
    def soft_budget_reached(self) -> bool:
        return self.soft_budget_nanos is not None and self.spend_nanos >= self.soft_budget_nanos


@dataclass(frozen=True, slots=True)
class _Budget:
    duration: str | None
    window: Window
    max_nanos: int | None
    effective_max_nanos: int | None
    tz: str
    model: str | None
    anchor: datetime | None = None
    main: bool = False


def profile_reset_at(profile: Budget, at: SpendAt) -> datetime | None:
    """When the current period of a budget profile's ``budget_duration`` ends (in the default
    zone, from the profile's start: the period of every entity that takes its duration from
    the profile, a team member's budget included); None without a duration."""
    if profile.budget_duration is None:
        return None
    start = profile.budget_start or profile.created_at
    end = period_for(profile.budget_duration, at.now, at.tz, start).end
    return None if end >= LIFETIME_END else end


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _budgets(spec: LimitSpec, at: SpendAt) -> list[_Budget]:
    """The budget windows enforcement builds from ``spec`` (see ``LimitSpec.limits`` and
    ``model_limits``), in that order."""
    out: list[_Budget] = []
    if spec.max_budget_nanos is not None or spec.soft_budget_nanos is not None:
        effective = spec.max_budget_nanos
        if effective is not None and spec.temp_increase_nanos:
            if spec.temp_expiry is None or at.now < spec.temp_expiry:
                effective += spec.temp_increase_nanos
        window = parse_window(spec.budget_duration or "lifetime")
        out.append(
            _Budget(
                spec.budget_duration,
                window,
                spec.max_budget_nanos,
                effective,
                at.tz,
                None,
                spec.budget_start,
                main=True,
            )
        )
    for duration, max_nanos, window_tz, start in spec.started_windows():
        window = parse_window(duration)
        out.append(_Budget(duration, window, max_nanos, max_nanos, window_tz or at.tz, None, start))
    for model_name, cfg in spec.model_max_budget.items():
        if not isinstance(cfg, dict):
            continue
        max_nanos = _int(cfg.get("max_budget_nanos"))
        if max_nanos is None:
            continue  # a model entry with only rate limits is no budget
        raw = cfg.get("budget_duration")
        model_duration = raw if isinstance(raw, str) else None
        window = parse_window(model_duration or "lifetime")
        start = model_start(cfg)
        out.append(_Budget(model_duration, window, max_nanos, max_nanos, at.tz, str(model_name), start))
    return out


def _window_queries(
    rollup: str, scope_id: str, spec: LimitSpec, at: SpendAt
) -> list[tuple[_Budget, SpendQuery]]:
    """Each budget window of one entity with the question that reads its current period."""
    return [
        (b, SpendQuery(rollup, scope_id, b.window, b.tz, b.model, b.anchor, adjustments=b.main))
        for b in _budgets(spec, at)
    ]


def _windows(
    budgets: list[tuple[_Budget, SpendQuery]], answers: dict[SpendQuery, PeriodSpend]
) -> list[WindowSpend]:
    return [
        WindowSpend(
            budget_duration=b.duration,
            max_nanos=b.max_nanos,
            effective_max_nanos=b.effective_max_nanos,
            spend_nanos=answers[q].spend_nanos,
            period=answers[q].period,
            tz=b.tz,
            model=b.model,
        )
        for b, q in budgets
    ]


async def _answer(
    repo: EntityRepository, scope: ScopeType, queries: list[SpendQuery], at: SpendAt
) -> dict[SpendQuery, PeriodSpend]:
    """Every question answered in as few reads as possible (model windows as the enforcer
    counts them when the router's groups are known)."""
    if not queries:
        return {}
    conn = await repo.session.connection()
    by_group = at.served_by is not None and scope.ledger_column is not None
    by_model = [q for q in queries if q.model is not None and by_group]
    answers = await scope_spend(conn, [q for q in queries if q.model is None or not by_group], now=at.now)
    if by_model:
        assert at.served_by is not None
        answers.update(await _group_spend(conn, scope, by_model, at.served_by, at.now))
    return answers


async def entity_spend(
    repo: EntityRepository,
    scope: ScopeType,
    specs: Sequence[tuple[str, LimitSpec]],
    at: SpendAt,
) -> dict[str, EntitySpend]:
    """The spend of each ``(scope id, limits)`` of one scope type, from the rollups, in one
    read for all of them.

    Args:
        repo: the request's repository (its session's connection reads the rollups).
        scope: the entities' scope type (``key``: ids are ``key_id``).
        specs: each entity's id and decoded limits (profile fallback included).
        at: the request time and the default zone.
    """
    rollup = scope.rollup
    assert rollup is not None, f"{scope.name} spend is not rolled up"
    plans: list[tuple[str, SpendQuery, SpendQuery, list[tuple[_Budget, SpendQuery]]]] = []
    for scope_id, spec in specs:
        main_window = parse_window(spec.budget_duration) if spec.budget_duration else _LIFETIME
        main = SpendQuery(rollup, scope_id, main_window, at.tz, anchor=spec.budget_start)
        # A key's spend set by /key/update counts in ``spend`` (its main window) and, as in
        # the reports by key, in its lifetime spend; its other budget windows count real spend.
        lifetime = SpendQuery(rollup, scope_id, _LIFETIME, at.tz)
        plans.append((scope_id, main, lifetime, _window_queries(rollup, scope_id, spec, at)))
    queries = [q for _, main, life, bs in plans for q in (main, life, *(q for _, q in bs))]
    answers = await _answer(repo, scope, queries, at)
    out: dict[str, EntitySpend] = {}
    for (scope_id, spec), (_, main, lifetime, budgets) in zip(specs, plans, strict=True):
        out[scope_id] = EntitySpend(
            spend_nanos=answers[main].spend_nanos,
            period=answers[main].period,
            lifetime_nanos=answers[lifetime].spend_nanos,
            soft_budget_nanos=spec.soft_budget_nanos,
            windows=_windows(budgets, answers),
        )
    return out


async def limited_windows(
    repo: EntityRepository,
    scope: ScopeType,
    specs: Sequence[tuple[str, LimitSpec]],
    at: SpendAt,
) -> dict[str, list[WindowSpend]]:
    """The budget windows with a limit of each entity that has one (entities without are
    left out), read as :func:`entity_spend` reads them, without the lifetime and ``spend``
    figures: what ranks entities by how near their limits they are."""
    rollup = scope.rollup
    assert rollup is not None, f"{scope.name} spend is not rolled up"
    plans = []
    for scope_id, spec in specs:
        budgets = [
            (b, q)
            for b, q in _window_queries(rollup, scope_id, spec, at)
            if b.effective_max_nanos is not None
        ]
        if budgets:
            plans.append((scope_id, budgets))
    answers = await _answer(repo, scope, [q for _, bs in plans for _, q in bs], at)
    return {scope_id: _windows(budgets, answers) for scope_id, budgets in plans}


async def _group_spend(
    conn: AsyncConnection,
    owner: ScopeType,
    queries: Sequence[SpendQuery],
    served_by: Callable[[str], Sequence[str]],
    now: datetime,
) -> dict[SpendQuery, PeriodSpend]:
    """Model windows read as the enforcer seeds them: one :func:`served_spend` per (model
    group, window, period), for every entity that has that window."""
    same: dict[tuple[str, Window, Period], list[SpendQuery]] = defaultdict(list)
    for q in queries:
        assert q.model is not None
        same[(q.model, q.window, period_for(q.window, now, q.tz, q.anchor))].append(q)
    out: dict[SpendQuery, PeriodSpend] = {}
    for (group, window, period), asked in same.items():
        spent = await served_spend(
            conn, owner, [q.scope_id for q in asked], group, list(served_by(group)), window, period
        )
        for q in asked:
            out[q] = PeriodSpend(period, spent.get(q.scope_id, 0))
    return out
