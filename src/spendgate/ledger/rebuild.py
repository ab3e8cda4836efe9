"""Counter rebuild: the spend of a scope in its current period, computed from the ledger.

Enforcement counters that are cold (a restart, a Redis flush, a new instance) are
**set** to these values, never incremented by them, so a rebuild can run any number of
times. Calendar windows of 15 minutes or more are read from the rollups (which retention
never touches); shorter windows and rolling windows read the raw events.

:func:`period_spend` is the enforcer's seed loader: the spend of any budget's scope in a
period, from the rollups for the scopes kept there, else summed from the period's events
(a team member, a per-model scope, a provider, a deployment). A per-model scope
(``key_model``, ``user_model``, ``team_model``, ``organization_model``, ``end_user_model``)
sums its owner's events (by the owner's ledger column: ``api_key``, ``user_id``,
``team_id``, ``organization_id``, ``end_user``) served by a deployment of its model group
(:func:`served_spend`, which the management API's entity views read too, so they show
the figure the enforcer counts).

A key's spend adjustments (an administrator set its spend, :mod:`spendgate.ledger.adjustments`)
count in its main window only (:attr:`spendgate.enforcement.BudgetLimit.counts_adjustments`): the other
windows of the key subtract its :data:`~spendgate.ledger.adjustments.ADJUSTMENT_ROLLUP`
rows over the same buckets, or leave the adjustment events out, and so does every window
read from the events (a model budget, a team member, a provider, a deployment).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from spendgate.core.periods import Period, Window, parse_window, period_for
from spendgate.core.scopes import SCOPE_TYPES, ScopeType, by_rollup, model_owner
from spendgate.enforcement import BudgetLimit
from spendgate.ledger.adjustments import ADJUSTMENT, ADJUSTMENT_ROLLUP
from spendgate.ledger.rollups import GRAINS
from spendgate.stores.database.models import SpendEventRow, SpendRollup

__all__ = ["ScopeWindow", "current_period_spend", "current_period_spend_many", "period_spend", "served_spend"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IDS_PER_STATEMENT = 500


@dataclass(frozen=True, slots=True)
class ScopeWindow:
    """One counter to rebuild: a scope, a window and optionally a model.

    ``scope_type`` is the scope type's rollup name (:attr:`spendgate.core.scopes.ScopeType.rollup`).
    ``adjustments``: count the key's spend adjustments, as its main window does; False for
    any other window of a key (it counts real spend only). Other scopes have none.
    """

    scope_type: str
    scope_id: str
    window: Window | str
    model: str | None = None
    adjustments: bool = True


def _epoch(at: datetime) -> int | None:
    """Epoch seconds, or None when ``at`` is not a whole second."""
    delta = at.astimezone(UTC) - _EPOCH
    return None if delta.microseconds else delta.days * 86400 + delta.seconds


async def _spend(conn: AsyncConnection, item: ScopeWindow, period: Period, rolling: bool) -> int:
    column = by_rollup(item.scope_type).ledger_column  # raises ValueError for an unknown type
    lo, hi = _epoch(period.start), _epoch(period.end)
    grains = [g for g in GRAINS if lo is not None and hi is not None and lo % g == 0 and hi % g == 0]
    real_only = item.scope_type == "key" and not item.adjustments
    if grains and not rolling:
        grain = max(grains)
        r = SpendRollup
        # A key's other windows: its rollups less its adjustment rows, in one statement.
        signed = case((r.scope_type == ADJUSTMENT_ROLLUP, -r.cost_nanos), else_=r.cost_nanos)
        stmt: Any = select(func.coalesce(func.sum(signed if real_only else r.cost_nanos), 0)).where(
            r.grain == grain,
            r.scope_type.in_([item.scope_type, ADJUSTMENT_ROLLUP])
            if real_only
            else r.scope_type == item.scope_type,
            r.scope_id == ("" if item.scope_type == "global" else item.scope_id),
            r.bucket >= lo,
            r.bucket < hi,
        )
        if item.model is not None:
            stmt = stmt.where(r.model == item.model)
        return int((await conn.execute(stmt)).scalar_one())

    events = SpendEventRow.__table__.c
    time_filter = (
        (events.occurred_at > period.start) & (events.occurred_at <= period.end)
        if rolling
        else (events.occurred_at >= period.start) & (events.occurred_at < period.end)
    )
    if item.scope_type == "tag":
        rows = await conn.execute(
            select(events.cost_nanos, events.request_tags, events.model).where(
                time_filter, events.request_tags.is_not(None)
            )
        )
        return sum(
            cost
            for cost, tags, model in rows
            if item.scope_id in (tags or []) and (item.model is None or model == item.model)
        )
    stmt = select(func.coalesce(func.sum(events.cost_nanos), 0)).where(time_filter)
    if column is not None:
        stmt = stmt.where(events[column] == item.scope_id)
    if column is None or real_only:  # global, or a key's other window: no adjustment
        stmt = stmt.where(events.status != ADJUSTMENT)
    if item.model is not None:
        stmt = stmt.where(events.model == item.model)
    return int((await conn.execute(stmt)).scalar_one())


async def current_period_spend_many(
    db: AsyncEngine | AsyncConnection,
    items: Iterable[ScopeWindow],
    *,
    tz: str | tzinfo | None = "UTC",
    now: datetime | None = None,
) -> dict[ScopeWindow, tuple[Period, int]]:
    """For each item, its current period and the nano-USD spent in it so far."""
    at = now or datetime.now(UTC)
    out: dict[ScopeWindow, tuple[Period, int]] = {}

    async def run(conn: AsyncConnection) -> None:
        for item in items:
            window = parse_window(item.window) if isinstance(item.window, str) else item.window
            period = period_for(window, at, tz)
            out[item] = (period, await _spend(conn, item, period, rolling=not window.is_calendar))

    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            await run(conn)
    else:
        await run(db)
    return out


async def current_period_spend(
    db: AsyncEngine | AsyncConnection,
    scope_type: str,
    scope_id: str,
    window: Window | str,
    *,
    tz: str | tzinfo | None = "UTC",
    now: datetime | None = None,
    model: str | None = None,
) -> int:
    """Nano-USD spent by one scope in the current period of ``window`` (in ``tz``).

    ``scope_type`` is a rollup name (:data:`spendgate.core.scopes.ROLLUP_NAMES`): ``global``,
    ``key`` (the key hash), ``user``, ``team``, ``org``, ``customer`` or ``tag``; for a
    :class:`~spendgate.core.scopes.Scope`, ``SCOPE_TYPES[scope.type].rollup``. Set the counter
    to this value; never add it.
    """
    item = ScopeWindow(scope_type, scope_id, window, model)
    result = await current_period_spend_many(db, [item], tz=tz, now=now)
    return result[item][1]


async def period_spend(
    engine: AsyncEngine,
    budget: BudgetLimit,
    period: Period,
    *,
    tz: str,
    served_by: Callable[[str], Sequence[str]],
) -> int:
    """Nano-USD spent in ``period`` by ``budget``'s scope.

    Args:
        engine: the ledger's database.
        budget: the limit whose counter is cold (its own timezone wins over ``tz``).
        period: the period to read.
        tz: the default timezone of calendar periods.
        served_by: a model group's deployment ids (a per-model scope's spend is billed at
            the group that served, so a fallback's spend is its own group's).
    """
    scope = budget.scope
    rollup = SCOPE_TYPES[scope.type].rollup
    if rollup is not None:  # the period as given (a window run from its budget's start included)
        item = ScopeWindow(rollup, scope.id, budget.window, adjustments=budget.counts_adjustments)
        async with engine.connect() as conn:
            return await _spend(conn, item, period, rolling=not budget.window.is_calendar)
    events = SpendEventRow.__table__.c
    where = _event_filters(budget.window, period)
    owner, _, rest = scope.id.partition(":")
    per_model = model_owner(scope.type)
    if scope.type == "team_member":
        where += [events.team_id == owner, events.user_id == rest]
    elif per_model is not None and per_model.ledger_column is not None:
        owner, group, served = _owner_and_group(scope.id, served_by)
        async with engine.connect() as conn:
            spent = await served_spend(conn, per_model, [owner], group, served, budget.window, period)
        return spent.get(owner, 0)
    elif scope.type == "provider":
        where += [events.provider == scope.id]
    elif scope.type == "deployment":
        where += [events.deployment_id == scope.id]
    else:
        return 0
    async with engine.connect() as conn:
        total = await conn.scalar(select(func.coalesce(func.sum(events.cost_nanos), 0)).where(*where))
    return int(total or 0)


async def served_spend(
    conn: AsyncConnection,
    owner: ScopeType,
    owner_ids: Collection[str],
    group: str,
    served: Sequence[str],
    window: Window,
    period: Period,
) -> dict[str, int]:
    """Nano-USD each owner spent in ``period`` at one model group: a per-model window's
    spend as enforcement counts it (the seed of ``<owner>_model:<owner id>:<group>``).

    The owner's events (by its ledger column) served by one of the group's deployments, so
    a group serving under another name (``gpt-4o`` → an Azure deployment) counts, and a
    fallback counts at the group that served; adjustments are left out (they belong to a
    key's main window). Read from ``spend_events``: the rollups keep a deployment on the
    ``global`` rows only.

    Args:
        conn: a connection to the ledger's database.
        owner: the owner's scope type (``key``, ``user``, ``team``, ``organization``,
            ``end_user``).
        owner_ids: the owners' ids (a key's ``key_id``); one statement per 500.
        group: the model group.
        served: the group's deployment ids; empty (a group the router does not know): the
            events that asked for ``group`` (``requested_model``).
        window: the budget's window (lifetime: every event; rolling: ``(start, end]``).
        period: the period to read.

    Returns:
        Each owner id with spend (an owner with none is absent).
    """
    column_name = owner.ledger_column
    if column_name is None:
        raise ValueError(f"{owner.name} spend is not attributed by one column")
    events = SpendEventRow.__table__.c
    column = events[column_name]
    where = _event_filters(window, period)
    where.append(events.deployment_id.in_(served) if served else events.requested_model == group)
    ids = sorted(set(owner_ids))
    out: dict[str, int] = {}
    for i in range(0, len(ids), _IDS_PER_STATEMENT):
        stmt = (
            select(column, func.sum(events.cost_nanos))
            .where(*where, column.in_(ids[i : i + _IDS_PER_STATEMENT]))
            .group_by(column)
        )
        for owner_id, spend in await conn.execute(stmt):
            if spend is not None:
                out[str(owner_id)] = int(spend)
    return out


def _event_filters(window: Window, period: Period) -> list[ColumnElement[bool]]:
    """The events of a window read from ``spend_events``: in ``period`` (lifetime: all), never
    an adjustment (a key's main window is read from the rollups; these scopes have none)."""
    events = SpendEventRow.__table__.c
    where: list[ColumnElement[bool]] = [events.status != ADJUSTMENT]
    if window.unit == "lifetime":
        pass  # every event
    elif window.is_calendar:
        where += [events.occurred_at >= period.start, events.occurred_at < period.end]
    else:
        where += [events.occurred_at > period.start, events.occurred_at <= period.end]
    return where


def _owner_and_group(scope_id: str, served_by: Callable[[str], Sequence[str]]) -> tuple[str, str, list[str]]:
    """A per-model scope id ``<owner>:<group>`` split, with the group's deployments. Owner ids
    (a customer named by the client) and group names (``llama3:8b``) may both hold a colon:
    the split whose right side is a configured model group wins, else the first colon."""
    parts = scope_id.split(":")
    for i in range(1, len(parts)):
        group = ":".join(parts[i:])
        served = list(served_by(group))
        if served:
            return ":".join(parts[:i]), group, served
    owner, _, group = scope_id.partition(":")
    return owner, group, []
