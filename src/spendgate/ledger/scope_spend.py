"""The spend of entities in their current budget periods, read from the rollups.

The management API shows, on every key, user, team, organization and customer, what it
has spent in each of its budget windows' current period (and in its lifetime). Those
figures must equal the ledger exactly and must cost the same whatever the history, so
they come from ``spend_rollups`` (``ix_spend_rollups_scope``: scope type, scope id,
grain, bucket), never from a scan of ``spend_events``; a key's or customer's spend of any
model from their rows of every model together (:data:`~spendgate.ledger.rollups.TOTALS`:
one row a bucket, not one per model).

A period ``[start, end)`` is read as the whole 15-minute buckets inside it, at the daily
grain when both ends fall on UTC midnights (UTC days, weeks, months), at the hourly grain
when both fall on whole hours (Europe/…), else at the 15-minute grain (Asia/Kolkata,
+5:30): every UTC offset in use is a multiple of 15 minutes, so calendar periods of an
hour or more are always whole buckets. Only a period boundary that is not
on a 15-minute boundary (a ``30s`` or ``20m`` window) leaves a part of a bucket; that part,
shorter than 15 minutes, is summed from the events of that short range (index on
``occurred_at``).

:func:`scope_spend` answers any number of ``(scope, window, zone, model)`` questions in
as few statements as possible: questions that share a period, scope type and model are
one ``scope_id IN (…) GROUP BY scope_id`` part, and the parts are one ``UNION ALL``, so
``/key/list`` with a hundred keys of the same windows is one statement.

A key's spend adjustments (an administrator set its spend, :mod:`spendgate.ledger.adjustments`)
count in its main window only: a question with ``adjustments=False`` (any other window of
the key) subtracts the key's :data:`~spendgate.ledger.adjustments.ADJUSTMENT_ROLLUP` rows
over the same buckets, and its event ranges leave the adjustment events out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Integer, String, any_, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from spendgate.core.periods import Period, Window, period_for
from spendgate.core.scopes import by_rollup
from spendgate.ledger.adjustments import ADJUSTMENT, ADJUSTMENT_ROLLUP
from spendgate.ledger.rollups import GRAINS, TOTALS
from spendgate.stores.database.models import SpendEventRow, SpendRollup

__all__ = ["PeriodSpend", "SpendQuery", "range_spend", "scope_spend"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FINE = GRAINS[0]
_IDS_PER_PART = 500
"""Scope ids in one ``IN (…)`` list."""
_PARTS_PER_STATEMENT = 200
"""Parts in one ``UNION ALL`` (SQLite allows 500 compound terms)."""


@dataclass(frozen=True, slots=True)
class SpendQuery:
    """One question: what did this scope spend in the current period of ``window``?

    ``scope_type`` is the rollup name of the scope type (``key``, ``user``, ``team``,
    ``org``, ``customer``, ``tag``, ``global``; :attr:`spendgate.core.scopes.ScopeType.rollup`),
    ``scope_id`` its id (the key's ``key_id``). ``tz`` is the IANA zone of the window's
    calendar; ``model`` narrows the spend to one model (the rollups' ``model`` column, the
    model that served the call); ``anchor`` is the budget's start, where a window that
    :attr:`~spendgate.core.periods.Window.runs_from_start` counts its periods from.
    ``adjustments``: count the key's spend adjustments, as its main window does (``max_budget``
    + ``budget_duration``); False for any other budget window of a key (``budget_limits``),
    which counts real spend only. Other scopes have no adjustments.
    """

    scope_type: str
    scope_id: str
    window: Window
    tz: str = "UTC"
    model: str | None = None
    anchor: datetime | None = None
    adjustments: bool = True


@dataclass(frozen=True, slots=True)
class PeriodSpend:
    """The current period of a question's window and the nano-USD spent in it."""

    period: Period
    spend_nanos: int


@dataclass(frozen=True, slots=True)
class _Part:
    """One ``GROUP BY scope_id`` term: rollups (``grain`` > 0) or events (``grain`` == 0)
    of one scope type over ``[lo, hi)`` (epoch seconds), optionally one model; events
    without the adjustments when ``adjustments`` is False."""

    grain: int
    lo: int
    hi: int
    scope_type: str
    model: str | None
    adjustments: bool = True


def _epoch(at: datetime) -> int:
    delta = at.astimezone(UTC) - _EPOCH
    return delta.days * 86400 + delta.seconds


def _instant(epoch: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch)


def _parts(
    period: Period, scope_type: str, model: str | None, adjustments: bool = True
) -> list[tuple[_Part, int]]:
    """The rollup and event ranges that add up to ``period`` exactly, each with its sign
    (-1: a key's adjustment rows, subtracted when ``adjustments`` is False)."""
    lo, hi = _epoch(period.start), _epoch(period.end)
    if period.start.microsecond or period.end.microsecond:
        raise ValueError("a period with fractional seconds cannot be read from the rollups")
    adjustments = adjustments or scope_type != "key"  # only a key has any
    inner_lo = -(-lo // _FINE) * _FINE
    inner_hi = hi // _FINE * _FINE
    if inner_lo >= inner_hi:  # shorter than a bucket, inside one: the events of that range
        return [(_Part(0, lo, hi, scope_type, model, adjustments), 1)]
    grain = max(g for g in GRAINS if inner_lo % g == 0 and inner_hi % g == 0)
    parts = [(_Part(grain, inner_lo, inner_hi, scope_type, model), 1)]
    if not adjustments:
        parts.append((_Part(grain, inner_lo, inner_hi, ADJUSTMENT_ROLLUP, model), -1))
    if lo < inner_lo:
        parts.append((_Part(0, lo, inner_lo, scope_type, model, adjustments), 1))
    if inner_hi < hi:
        parts.append((_Part(0, inner_hi, hi, scope_type, model, adjustments), 1))
    return parts


def _among(column: Any, ids: Sequence[str], postgres: bool) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL ``column = ANY(array)``: one parameter, not hundreds
    (compiling and sending hundreds of binds cost more than the index scans)."""
    if postgres:
        among: ColumnElement[bool] = column == any_(literal(list(ids), ARRAY(String)))
        return among
    inside: ColumnElement[bool] = column.in_(ids)
    return inside


def _select(index: int, part: _Part, ids: Sequence[str], postgres: bool = False) -> Any:
    tag = literal(index, Integer).label("part")
    if part.grain:
        r = SpendRollup
        # Any model: a key's or customer's rows of every model together (one per bucket).
        scope_type = TOTALS.get(part.scope_type, part.scope_type) if part.model is None else part.scope_type
        where: list[ColumnElement[bool]] = [
            r.scope_type == scope_type,
            _among(r.scope_id, ids, postgres),
            r.grain == part.grain,
            r.bucket >= part.lo,
            r.bucket < part.hi,
        ]
        if part.model is not None:
            where.append(r.model == part.model)
        return (
            select(tag, r.scope_id.label("scope_id"), func.sum(r.cost_nanos).label("spend"))
            .where(*where)
            .group_by(r.scope_id)
        )
    events = SpendEventRow.__table__.c
    where = [events.occurred_at >= _instant(part.lo), events.occurred_at < _instant(part.hi)]
    if part.model is not None:
        where.append(events.model == part.model)
    if not part.adjustments:  # a key's window other than its main one
        where.append(events.status != ADJUSTMENT)
    column_name = by_rollup(part.scope_type).ledger_column
    if part.scope_type == "global":  # every event but the adjustments (they are their key's only)
        where.append(events.status != ADJUSTMENT)
        return select(tag, literal("", String).label("scope_id"), func.sum(events.cost_nanos)).where(*where)
    if column_name is None:
        raise ValueError(f"{part.scope_type} spend can only be read over periods of whole 15-minute buckets")
    column = events[column_name]
    return (
        select(tag, column.label("scope_id"), func.sum(events.cost_nanos).label("spend"))
        .where(*where, _among(column, ids, postgres))
        .group_by(column)
    )


async def scope_spend(
    conn: AsyncConnection, queries: Iterable[SpendQuery], *, now: datetime
) -> dict[SpendQuery, PeriodSpend]:
    """For each question, the current period of its window at ``now`` and the nano-USD
    spent in it, exactly (the sum of the ledger's events in that period).

    Args:
        conn: a connection to the ledger's database (any open transaction is fine: only reads).
        queries: the questions (duplicates are answered once).
        now: the instant whose current periods are read (timezone-aware).

    Raises:
        ValueError: a rolling window (its period is not a calendar period), or a tag over a
            period that is not whole 15-minute buckets.
    """
    asked = list(dict.fromkeys(queries))
    periods: dict[SpendQuery, Period] = {}
    wanted: dict[_Part, set[str]] = defaultdict(set)
    parts_of: dict[SpendQuery, list[tuple[_Part, int]]] = {}
    # Many questions share a window, zone and scope type (a page of keys): each period and
    # its parts are worked out once.
    known_periods: dict[tuple[Window, str, datetime | None], Period] = {}
    known_parts: dict[tuple[Period, str, str | None, bool], list[tuple[_Part, int]]] = {}
    for q in asked:
        if not q.window.is_calendar:
            raise ValueError(f"rolling window {q.window.name} has no current calendar period")
        anchor = q.anchor if q.window.runs_from_start else None  # other windows ignore it
        period = known_periods.get((q.window, q.tz, anchor))
        if period is None:
            period = known_periods[(q.window, q.tz, anchor)] = period_for(q.window, now, q.tz, anchor)
        periods[q] = period
        scope_id = "" if q.scope_type == "global" else q.scope_id
        shape = (period, q.scope_type, q.model, q.adjustments)
        parts = known_parts.get(shape)
        if parts is None:
            parts = known_parts[shape] = _parts(period, q.scope_type, q.model, q.adjustments)
        parts_of[q] = parts
        for part, _ in parts:
            wanted[part].add(scope_id)

    terms: list[tuple[_Part, list[str]]] = []
    for part, ids in wanted.items():
        ordered = sorted(ids)
        for i in range(0, len(ordered), _IDS_PER_PART):
            terms.append((part, ordered[i : i + _IDS_PER_PART]))
    found: dict[tuple[_Part, str], int] = {}
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(terms), _PARTS_PER_STATEMENT):
        chunk = terms[start : start + _PARTS_PER_STATEMENT]
        selects = [_select(start + i, part, ids, postgres) for i, (part, ids) in enumerate(chunk)]
        stmt: Any = selects[0] if len(selects) == 1 else union_all(*selects)
        rows: list[Any] = list(await conn.execute(stmt))
        for index, scope_id, spend in rows:
            if spend is not None:
                key = (terms[int(index)][0], scope_id or "")
                found[key] = found.get(key, 0) + int(spend)

    out: dict[SpendQuery, PeriodSpend] = {}
    for q in asked:
        scope_id = "" if q.scope_type == "global" else q.scope_id
        total = sum(sign * found.get((part, scope_id), 0) for part, sign in parts_of[q])
        out[q] = PeriodSpend(periods[q], total)
    return out


async def range_spend(
    conn: AsyncConnection, scope_type: str, scope_id: str, start: datetime, end: datetime
) -> int:
    """Nano-USD spent by one scope in ``[start, end)``, exactly: the rollups' whole buckets
    and the events of the edges (as :func:`scope_spend` reads a period; ``start`` on a whole
    second, ``end`` any instant).

    Args:
        conn: a connection to the ledger's database.
        scope_type: a rollup name attributed by one column (``key``, ``user``, ``team``,
            ``org``, ``customer``).
        scope_id: the scope's id (a key's ``key_id``).
        start: the first instant counted.
        end: the first instant not counted (e.g. when a key's spend was set).
    """
    column_name = by_rollup(scope_type).ledger_column
    if column_name is None:
        raise ValueError(f"range_spend reads a scope attributed by one column, not {scope_type}")
    whole = max(end.replace(microsecond=0), start)
    total = 0
    if whole > start:
        for index, (part, sign) in enumerate(_parts(Period(start, whole, "range"), scope_type, None)):
            for _, _, spend in await conn.execute(_select(index, part, [scope_id])):
                total += sign * int(spend or 0)
    if end > whole:  # the fraction of a second before ``end``
        events = SpendEventRow.__table__.c
        tail = select(func.sum(events.cost_nanos)).where(
            events.occurred_at >= whole, events.occurred_at < end, events[column_name] == scope_id
        )
        total += int(await conn.scalar(tail) or 0)
    return total
