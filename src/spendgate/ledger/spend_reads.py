"""The reads LiteLLM's spend endpoints need that :func:`~spendgate.ledger.reports.spend_report`
does not offer by itself.

* :func:`read_slices`: spend per (local day, scope, model), narrowed to a set of scope ids.
  It is a rollup read through ``spend_report`` (so it is exact in any IANA zone),
  narrowed in SQL to the rows of the named ids (``scope_ids``). Summing the key rollups of a set of keys is
  exact: every event has one key.
* :func:`lifetime_spend`: each id's spend over all time (the rollups, never the events).
* :func:`log_page` and :func:`daily_log_summary`: the spend-log reads over raw
  ``spend_events``, always bounded by a range of ``occurred_at`` (its index) or a request
  id, bound parameters only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.core.periods import get_timezone
from spendgate.ledger.reports import Totals, spend_report
from spendgate.stores.database.models import SpendEventRow, SpendRollup

__all__ = ["Slice", "daily_log_summary", "lifetime_spend", "log_page", "read_slices"]

_DAY = 86400
_TOTALS = tuple(f.name for f in fields(Totals))
"""The report's metric columns, in the order of :class:`Totals`' fields."""


@dataclass(slots=True)
class Slice:
    """Spend of one (local day, scope id, model); a ``None`` part was not asked for (or is
    none: an event without a team)."""

    day: date | None
    scope_id: str | None
    model: str | None
    totals: Totals


async def read_slices(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    tz: str,
    scope: str = "global",
    ids: Collection[str] | None = None,
    daily: bool = False,
    by_scope: bool = False,
    by_model: bool = False,
) -> list[Slice]:
    """Spend over ``[start, end)`` from the rollups of scope type ``scope``.

    Args:
        session: the request's session.
        start, end: local-day boundaries (timezone-aware).
        tz: the IANA zone the days are local days in.
        scope: a rollup scope type (``global``, ``key``, ``team``, ``customer``, ``tag``…).
        ids: keep only these scope ids (None: all). The rows are summed over the kept ids
            unless ``by_scope``.
        daily: one slice per local day (else one over the range).
        by_scope: keep the scope id in the slices.
        by_model: keep the model in the slices.

    Returns:
        Slices in order: day, scope id, model (byte order, none first).
    """
    if ids is not None and not ids:
        return []
    group: list[str] = []
    if scope != "global" and (by_scope or ids is not None):
        group.append(scope)
    if by_model:
        group.append("model")
    report = await spend_report(
        session,
        start=start,
        end=end,
        group_by=group,
        granularity="day" if daily else None,
        tz=tz,
        scope_ids=ids if scope in group else None,  # in SQL: only the named ids' rollup rows
    )
    zone = get_timezone(tz)
    cols = report.columns
    count = report.row_count
    scope_col = cols[scope] if scope in group else [None] * count
    model_col = cols["model"] if by_model else [None] * count
    days: dict[Any, date | None] = {None: None}
    for period in dict.fromkeys(cols["period"]):
        if period is not None:
            days[period] = period.start.astimezone(zone).date()
    # Straight from the report's columns (no row objects): a month of teams × models is
    # tens of thousands of rows. Rows only merge when the scope id is summed over.
    metrics = zip(*(cols[m] for m in _TOTALS), strict=True)
    merged: dict[tuple[date | None, str | None, str | None], Totals] = {}
    for period, sid, model, values in zip(cols["period"], scope_col, model_col, metrics, strict=True):
        if ids is not None and (sid or "") not in ids:
            continue  # the global scope: no id to narrow by in SQL
        key = (days[period], sid if by_scope else None, model)
        total = merged.get(key)
        if total is None:
            merged[key] = Totals(*values)
        else:
            total.add(Totals(*values))
    return [Slice(d, s, m, t) for (d, s, m), t in merged.items()]


async def lifetime_spend(session: AsyncSession, scope: str, ids: Sequence[str]) -> dict[str, int]:
    """Each id's spend in nano-USD over all time (daily rollups of scope type ``scope``:
    a UTC day holds every event of its hours); an id without spend is 0."""
    out = dict.fromkeys(ids, 0)
    if not ids:
        return out
    stmt = (
        select(SpendRollup.scope_id, func.sum(SpendRollup.cost_nanos))
        .where(
            SpendRollup.grain == _DAY,
            SpendRollup.scope_type == scope,
            SpendRollup.scope_id.in_(sorted(set(ids))),
        )
        .group_by(SpendRollup.scope_id)
    )
    for sid, total in (await session.execute(stmt)).all():
        out[sid] = int(total or 0)
    return out


async def log_page(
    session: AsyncSession,
    *,
    where: Sequence[ColumnElement[bool]],
    limit: int,
    offset: int = 0,
    after: tuple[datetime, str] | None = None,
) -> list[SpendEventRow]:
    """One page of spend events matching ``where``, newest first: by ``occurred_at``, then
    ``event_id`` (a total order: the two are the primary key).

    ``after`` is the ``(occurred_at, event_id)`` of the previous page's last row: the page
    starts right after it (keyset pagination). On PostgreSQL the order and the keyset
    condition are read backwards from ``ix_spend_events_occurred_at_event_id`` (migration
    0011), partition by partition from the newest, and stop after ``limit`` rows: no sort,
    however many events there are. ``offset`` (LiteLLM's ``page``) skips rows and so
    reads them; a cursor does not.
    """
    e = SpendEventRow
    stmt = select(e).where(*where)
    if after is not None:
        # A row comparison (the index's condition); the values are bound with the columns' types.
        stmt = stmt.where(tuple_(e.occurred_at, e.event_id) < after)
    stmt = stmt.order_by(e.occurred_at.desc(), e.event_id.desc()).limit(limit).offset(offset)
    return list((await session.scalars(stmt)).all())


async def daily_log_summary(
    session: AsyncSession,
    *,
    where: Sequence[ColumnElement[bool]],
    boundaries: Sequence[datetime],
) -> list[tuple[int, str | None, str | None, str | None, int]]:
    """Spend per (day, key, user, model) of the events matching ``where`` between
    ``boundaries[0]`` and ``boundaries[-1]``: ``(day index, api_key, user_id, model,
    cost_nanos)``. Day ``i`` is ``[boundaries[i], boundaries[i + 1])``; the mapping is a
    ``CASE`` over the boundaries (bound parameters), so it is exact in any zone."""
    at = SpendEventRow.occurred_at
    day: Any = case(
        *((at < boundaries[i + 1], i) for i in range(len(boundaries) - 1)),
        else_=len(boundaries) - 1,
    ).label("day")
    # Grouped over a subquery: PostgreSQL would see the CASE in GROUP BY, re-rendered with
    # new parameters, as a different expression from the one selected.
    inner = (
        select(
            day, SpendEventRow.api_key, SpendEventRow.user_id, SpendEventRow.model, SpendEventRow.cost_nanos
        )
        .where(at >= boundaries[0], at < boundaries[-1], *where)
        .subquery()
    )
    c = inner.c
    stmt = select(c.day, c.api_key, c.user_id, c.model, func.sum(c.cost_nanos)).group_by(
        c.day, c.api_key, c.user_id, c.model
    )
    return [(int(d), k, u, m, int(c or 0)) for d, k, u, m, c in (await session.execute(stmt)).all()]
