"""Daily activity: per local day, an entity's spend, tokens and requests, broken down by
model, provider, entity and key, read from the rollups (LiteLLM's daily activity endpoints).

Two reads of :func:`~spendgate.ledger.reports.spend_report` (day granularity, exact in any
IANA zone, rollups only):

* the **entity** rows (``[scope, model, provider]``, scope one of user / team / tag /
  customer) give each day's metrics and the model, provider and entity breakdowns;
* the **key** rows (``[key, model, provider]``) give the per-key breakdown: every event has
  one key, so a key's rows are exactly its spend.

The rollups keep one scope per row, never (entity, key) pairs, so the per-key figures of an
entity are the key-scope rollups of the keys the caller says belong to it
(:func:`daily_activity`'s ``keys``): a key's whole spend that day. When the answer is about
one key (:func:`key_activity`), the key rows are the whole answer and the entities it is
listed under are given by the caller.

When the caller knows which ids it wants (``entity_ids``, ``key_ids``; one key in
:func:`key_activity`), the reads are narrowed to them in SQL (``spend_report``'s
``scope_ids``): a team's activity reads that team's rollup rows and its keys', not every
team's and every key's.

Each figure is a :class:`~spendgate.ledger.reports.Totals` (money in integer nano-USD); the
admin layer names its fields as LiteLLM's ``SpendMetrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from spendgate.core.periods import get_timezone
from spendgate.ledger.reports import Report, Totals, spend_report

__all__ = ["ACTIVITY_SCOPES", "DayActivity", "daily_activity", "key_activity"]

ACTIVITY_SCOPES = ("user", "team", "tag", "customer")
"""The report dimensions an activity read is about."""

_Db = AsyncEngine | AsyncConnection | AsyncSession
_Keep = Callable[[str | None], bool]
_TOTALS = tuple(f.name for f in fields(Totals))
"""The report columns of a :class:`~spendgate.ledger.reports.Totals`, in its field order."""


def _add(table: dict[Any, Totals], key: Any, row: Totals) -> None:
    acc = table.get(key)
    if acc is None:
        table[key] = acc = Totals()
    acc.add(row)


@dataclass(slots=True)
class DayActivity:
    """One local day: its totals and breakdowns. ``None`` keys mean "none" (no model, no
    provider, no team, no key…)."""

    day: date
    metrics: Totals = field(default_factory=Totals)
    models: dict[str | None, Totals] = field(default_factory=dict)
    providers: dict[str | None, Totals] = field(default_factory=dict)
    entities: dict[str | None, Totals] = field(default_factory=dict)
    keys: dict[str | None, Totals] = field(default_factory=dict)
    """Per key (the ledger's stable ``key_id``)."""

    def count(self, model: str | None, provider: str | None, m: Totals) -> None:
        """Add one row of the day's spend to its totals and its model and provider breakdowns."""
        self.metrics.add(m)
        _add(self.models, model, m)
        _add(self.providers, provider, m)


def _day(out: dict[date, DayActivity], day: date) -> DayActivity:
    act = out.get(day)
    if act is None:
        out[day] = act = DayActivity(day)
    return act


def _bounds(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    # Noon of each day: inside the local day whatever its DST transitions; the report widens
    # the range to whole local days, so this covers [first 00:00, last + 1 00:00) local.
    return datetime.combine(first, time(12), zone), datetime.combine(last, time(12), zone)


async def _report(
    db: _Db, dim: str, first: date, last: date, tz: str, ids: Collection[str | None] | None = None
) -> Report:
    start, end = _bounds(first, last, get_timezone(tz))
    return await spend_report(
        db,
        start=start,
        end=end,
        group_by=[dim, "model", "provider"],
        granularity="day",
        tz=tz,
        scope_ids=None if ids is None else {i or "" for i in ids},  # the rollups' none is ''
    )


def _rows(
    report: Report, dim: str, zone: tzinfo, keep: _Keep, model: str | None
) -> list[tuple[date, str | None, str | None, str | None, Totals]]:
    """``(local day, dimension value, model, provider, metrics)`` of the kept rows."""
    c = report.columns
    days: dict[Any, date] = {}
    out = []
    for i, period in enumerate(c["period"]):
        value, row_model = c[dim][i], c["model"][i]
        if not keep(value) or (model is not None and row_model != model):
            continue
        day = days.get(period)
        if day is None:
            days[period] = day = period.start.astimezone(zone).date()
        metrics = Totals(*(c[name][i] for name in _TOTALS))
        out.append((day, value, row_model, c["provider"][i], metrics))
    return out


async def daily_activity(
    db: _Db,
    *,
    scope: str,
    first: date,
    last: date,
    tz: str = "UTC",
    entities: _Keep,
    keys: _Keep,
    model: str | None = None,
    entity_ids: Collection[str | None] | None = None,
    key_ids: Collection[str | None] | None = None,
) -> list[DayActivity]:
    """The activity of the entities of ``scope`` that ``entities`` keeps, per local day in
    ``tz`` from ``first`` to ``last`` (inclusive), newest first; days without activity are
    left out.

    Args:
        db: an engine, connection or session (the request's transaction).
        scope: ``user``, ``team``, ``tag`` or ``customer``.
        entities: which entity ids to count (``None``: events without one).
        keys: which keys (``key_id``; ``None``: events without a key) to list in the per-key
            breakdown.
        model: count only this model.
        entity_ids: when given, only these entities are read (in SQL; ``None`` in it: the
            events without one); ``entities`` still decides which of them count.
        key_ids: likewise for the per-key breakdown, with ``keys``.
    """
    if scope not in ACTIVITY_SCOPES:
        raise ValueError(f"unknown activity scope {scope!r}")
    zone = get_timezone(tz)
    out: dict[date, DayActivity] = {}
    for day, entity, row_model, provider, m in _rows(
        await _report(db, scope, first, last, tz, entity_ids), scope, zone, entities, model
    ):
        act = _day(out, day)
        act.count(row_model, provider, m)
        _add(act.entities, entity, m)
    if out and (key_ids is None or key_ids):
        key_report = await _report(db, "key", first, last, tz, key_ids)
        for day, key, _, _, m in _rows(key_report, "key", zone, keys, model):
            if day in out:
                _add(out[day].keys, key, m)
    return [out[d] for d in sorted(out, reverse=True)]


async def key_activity(
    db: _Db,
    *,
    key_id: str,
    listed_under: Sequence[str | None],
    first: date,
    last: date,
    tz: str = "UTC",
    model: str | None = None,
) -> list[DayActivity]:
    """One key's activity per local day (newest first), each day's figures also listed under
    every entity of ``listed_under`` (the entities the key belongs to)."""
    zone = get_timezone(tz)
    out: dict[date, DayActivity] = {}
    for day, _, row_model, provider, m in _rows(
        await _report(db, "key", first, last, tz, [key_id]), "key", zone, lambda k: k == key_id, model
    ):
        act = _day(out, day)
        act.count(row_model, provider, m)
        _add(act.keys, key_id, m)
        for entity in listed_under:
            _add(act.entities, entity, m)
    return [out[d] for d in sorted(out, reverse=True)]
