"""Budget gauges, computed when scraped: LiteLLM's remaining / max / hours-until-reset
gauges for teams, keys, users, organizations and customers.

Nothing is done on the request path. A scrape lists the entities that have a budget (at
most ``cap`` of each kind, re-listed every ``entity_ttl`` seconds), reads their counters in
one storage call (:func:`~spendgate.enforcement.explain`, which seeds a cold counter from
the ledger, so a restart never shows the full budget as remaining), and the collector
serves that snapshot. The gauges are never written to prometheus-client's multiprocess
files: with several workers, the one that answers the scrape reads the shared counters, so
nothing is counted twice.

An unlimited budget (``max_budget`` null) has no series — never ``+Inf`` — and a lifetime
or rolling window has no hours-until-reset series (it has no reset).

A key's per-model rate limits (LiteLLM's ``model_rpm_limit`` / ``model_tpm_limit`` in its
metadata) give ``litellm_remaining_api_key_{requests,tokens}_for_model``: how many more
requests (tokens) the sliding window admits now, as the admission computes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.core.scopes import Scope
from spendgate.enforcement import EnforcementRequest, Enforcer, RateLimit, ScopeWindowState, explain
from spendgate.entities.codec import decode_limits
from spendgate.metrics.requests import NANOS_PER_USD
from spendgate.stores.counters.base import TICKS
from spendgate.stores.database.models import Budget, EndCustomer, Organization, Team, User, VirtualKey

__all__ = ["BudgetCollector", "BudgetReader", "BudgetSample", "RateSample"]


@dataclass(frozen=True, slots=True)
class _Kind:
    scope: str
    """The scope type the budget is enforced as."""
    metric: str
    """LiteLLM's entity word in the metric names."""
    label_names: tuple[str, ...]
    model: Any
    id_column: str
    alias_column: str | None


_KINDS = (
    _Kind("team", "team", ("team", "team_alias"), Team, "team_id", "team_alias"),
    _Kind("key", "api_key", ("hashed_api_key", "api_key_alias"), VirtualKey, "key_id", "key_alias"),
    _Kind("user", "user", ("user",), User, "user_id", None),
    _Kind("organization", "org", ("org",), Organization, "organization_id", None),
    _Kind("end_user", "customer", ("end_user",), EndCustomer, "user_id", None),
)


@dataclass(frozen=True, slots=True)
class BudgetSample:
    """One entity's main budget window as read at a scrape (USD and hours, floats)."""

    kind: str
    labels: tuple[str, ...]
    max_usd: float
    remaining_usd: float
    reserved_usd: float
    hours_left: float | None


@dataclass(frozen=True, slots=True)
class RateSample:
    """How much a key's per-model rate limit admits now (requests or tokens)."""

    kind: str
    """``requests`` or ``tokens``."""
    labels: tuple[str, ...]
    """(hashed_api_key, api_key_alias, model)."""
    remaining: int


@dataclass(frozen=True, slots=True)
class _KeyModelLimit:
    labels: tuple[str, ...]
    limit: RateLimit


@dataclass(frozen=True, slots=True)
class _Entity:
    kind: _Kind
    labels: tuple[str, ...]
    state_index: int


class BudgetCollector(Collector):
    """Serves the last snapshot :class:`BudgetReader` took (a prometheus-client collector)."""

    def __init__(self) -> None:
        self.samples: Sequence[BudgetSample] = ()
        self.rates: Sequence[RateSample] = ()
        self.truncated: dict[str, bool] = {}
        self.stale = False
        """True when the last refresh failed (the budget series are then dropped)."""

    def clear(self) -> None:
        """Drop the snapshot (its series disappear until the next refresh succeeds)."""
        self.samples = ()
        self.rates = ()
        self.truncated = {}

    def describe(self) -> list[Metric]:
        return []  # registering must not collect

    def collect(self) -> Iterator[Metric]:
        by_kind = {kind.metric: kind for kind in _KINDS}
        for word, kind in by_kind.items():
            remaining = GaugeMetricFamily(
                f"litellm_remaining_{word}_budget_metric",
                f"Remaining budget of a {word} in its current period (USD)",
                labels=kind.label_names,
            )
            maximum = GaugeMetricFamily(
                f"litellm_{word}_max_budget_metric",
                f"Maximum budget of a {word} (USD)",
                labels=kind.label_names,
            )
            hours = GaugeMetricFamily(
                f"litellm_{word}_budget_remaining_hours_metric",
                f"Hours until a {word}'s budget period resets",
                labels=kind.label_names,
            )
            for sample in self.samples:
                if sample.kind != word:
                    continue
                remaining.add_metric(sample.labels, sample.remaining_usd)
                maximum.add_metric(sample.labels, sample.max_usd)
                if sample.hours_left is not None:
                    hours.add_metric(sample.labels, sample.hours_left)
            yield remaining
            yield maximum
            yield hours
        for what in ("requests", "tokens"):
            family = GaugeMetricFamily(
                f"litellm_remaining_api_key_{what}_for_model",
                f"{what.capitalize()} a key may still send to a model in the current rate window",
                labels=("hashed_api_key", "api_key_alias", "model"),
            )
            for rate in self.rates:
                if rate.kind == what:
                    family.add_metric(rate.labels, float(rate.remaining))
            yield family
        reserved = GaugeMetricFamily(
            "spendgate_budget_reserved_usd",
            "Worst-case cost reserved by requests in flight against the budgets of one kind of entity (USD)",
            labels=("scope_type",),
        )
        totals: dict[str, float] = {kind.metric: 0.0 for kind in _KINDS}
        for sample in self.samples:
            totals[sample.kind] += sample.reserved_usd
        for word, total in totals.items():
            reserved.add_metric((word,), total)
        yield reserved
        truncated = GaugeMetricFamily(
            "spendgate_budget_metrics_truncated",
            "1 when a kind of entity has more budgets than the gauges show "
            "(general_settings.metrics_max_budget_entities)",
            labels=("scope_type",),
        )
        for word in totals:
            truncated.add_metric((word,), 1.0 if self.truncated.get(word) else 0.0)
        yield truncated
        stale = GaugeMetricFamily(
            "spendgate_budget_metrics_stale",
            "1 when the last scrape could not read the budgets (database or Redis failed or "
            "timed out): the budget series are dropped",
        )
        stale.add_metric((), 1.0 if self.stale else 0.0)
        yield stale


class BudgetReader:
    """Reads the budget gauges' data (see the module docstring).

    Args:
        engine: the entities' database.
        enforcer: the budget counters.
        tz: the default budget timezone.
        cap: at most this many entities of each kind get series.
        entity_ttl: seconds a listing of entities is reused.
        min_interval: scrapes closer together than this reuse the last snapshot.
        rate_window: seconds of an rpm / tpm window (``general_settings.rate_limit_window_seconds``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        enforcer: Enforcer,
        *,
        tz: str,
        cap: int,
        entity_ttl: float = 10.0,
        min_interval: float = 1.0,
        rate_window: float = 60.0,
    ) -> None:
        self.engine = engine
        self.enforcer = enforcer
        self.tz = tz
        self.cap = cap
        self.entity_ttl = entity_ttl
        self.min_interval = min_interval
        self.rate_window = rate_window
        self._listed: tuple[float, list[_Entity], list[Any], list[_KeyModelLimit], dict[str, bool]] | None = (
            None
        )
        self._read_at = -1e9

    async def refresh(self, collector: BudgetCollector) -> None:
        """Take a new snapshot into ``collector`` (unless the last one is fresh enough)."""
        now = time.monotonic()
        if now - self._read_at < self.min_interval:
            return
        if self._listed is None or now - self._listed[0] > self.entity_ttl:
            entities, budgets, truncated = await self._list()
            key_models = await self._key_models()
            self._listed = (now, entities, budgets, key_models, truncated)
        _, entities, budgets, key_models, truncated = self._listed
        states = await explain(self.enforcer, EnforcementRequest("metrics", budgets)) if budgets else []
        collector.samples = [_sample(e, states[e.state_index]) for e in entities]
        collector.rates = await self._rates(key_models)
        collector.truncated = truncated
        self._read_at = time.monotonic()

    async def _list(self) -> tuple[list[_Entity], list[Any], dict[str, bool]]:
        entities: list[_Entity] = []
        budgets: list[Any] = []
        truncated: dict[str, bool] = {}
        async with AsyncSession(self.engine) as session:
            for kind in _KINDS:
                model = kind.model
                ident = getattr(model, kind.id_column)
                profile_column = getattr(model, "budget_id", None)  # users have no profile
                limited = model.max_budget_nanos.is_not(None)
                if profile_column is not None:
                    limited = or_(limited, profile_column.is_not(None))
                rows = (
                    await session.scalars(select(model).where(limited).order_by(ident).limit(self.cap + 1))
                ).all()
                truncated[kind.metric] = len(rows) > self.cap
                rows = rows[: self.cap]
                profile_ids = {r.budget_id for r in rows if getattr(r, "budget_id", None)}
                profiles = (
                    {
                        p.budget_id: p
                        for p in await session.scalars(
                            select(Budget).where(Budget.budget_id.in_(profile_ids))
                        )
                    }
                    if profile_ids
                    else {}
                )
                for row in rows:
                    profile_id = getattr(row, "budget_id", None)
                    spec = decode_limits(row, profiles.get(profile_id) if profile_id else None)
                    if spec.max_budget_nanos is None:
                        continue  # unlimited: no series, never +Inf
                    scope_id = getattr(row, kind.id_column)
                    limits, _ = spec.limits(Scope(kind.scope, scope_id), tz=self.tz, rate_window=60.0)
                    alias = getattr(row, kind.alias_column) if kind.alias_column else None
                    labels = (scope_id, alias or "") if kind.alias_column else (scope_id,)
                    entities.append(_Entity(kind, labels, len(budgets)))
                    budgets.append(limits[0])  # the main window (max_budget + budget_duration)
        return entities, budgets, truncated

    async def _key_models(self) -> list[_KeyModelLimit]:
        """Every (key, model) rate limit of the first ``cap`` keys that have metadata."""
        out: list[_KeyModelLimit] = []
        async with AsyncSession(self.engine) as session:
            keys = (
                await session.scalars(
                    select(VirtualKey)
                    .where(VirtualKey.metadata_.is_not(None))
                    .order_by(VirtualKey.key_id)
                    .limit(self.cap)
                )
            ).all()
        for key in keys:
            spec = decode_limits(key, None)
            for model in sorted({*spec.model_rpm_limit, *spec.model_tpm_limit}):
                scope = Scope.key_model(key.key_id, model)
                _, rates = spec.model_limits(scope, model, tz=self.tz, rate_window=self.rate_window)
                labels = (key.key_id, key.key_alias or "", model)
                out.extend(_KeyModelLimit(labels, r) for r in rates if r.kind in ("requests", "tokens"))
        return out

    async def _rates(self, key_models: list[_KeyModelLimit]) -> list[RateSample]:
        limited = [k for k in key_models if k.limit.limit is not None]
        if not limited:
            return []
        reading = await self.enforcer.read(EnforcementRequest("metrics", (), [k.limit for k in limited]))
        out = []
        for k, op, state in zip(limited, reading.rate_ops, reading.rate_states, strict=True):
            # What the admission would still admit (memory storage / Lua: the same formula).
            ticks = state.elapsed_ms * TICKS // op.window_ms
            room = op.limit * TICKS - state.previous * (TICKS - ticks) - state.current * TICKS
            out.append(RateSample(k.limit.kind, k.labels, max(0, room // TICKS)))
        return out


def _sample(entity: _Entity, state: ScopeWindowState) -> BudgetSample:
    limit = state.limit_nanos or 0
    hours: float | None = None
    if state.period_end is not None and state.budget.window.unit != "rolling":
        hours = max(0.0, (state.period_end - datetime.now(UTC)).total_seconds() / 3600)
    return BudgetSample(
        kind=entity.kind.metric,
        labels=entity.labels,
        max_usd=limit / NANOS_PER_USD,
        remaining_usd=(limit - state.spend_nanos) / NANOS_PER_USD,
        reserved_usd=state.reserved_nanos / NANOS_PER_USD,
        hours_left=hours,
    )
