"""Spend reports: spend, tokens and requests grouped by dimensions and calendar periods.

Reports read the rollups, never the raw events, so a report over months costs the same
as one over a day. They are exact in any IANA timezone:

* the range is widened to whole periods of the granularity in ``tz`` (to whole 15-minute
  buckets when there is no granularity), and the report says which range it covers;
* each stretch of the range is read from the coarsest rollup grain (1 UTC day / 1 hour /
  15 minutes) whose buckets there lie inside one period: a UTC day report reads daily rows;
  an hourly report in Asia/Kolkata, whole hours and the quarter hours around its midnights
  (:mod:`spendgate.ledger.rollups` explains why 15 minutes always fits);
* local days, weeks and months of a zone off UTC midnight are read by difference: their
  UTC days, plus or minus the piece between each boundary and its nearest UTC midnight
  (an Asia/Kolkata day: 1 daily, 5 hourly and 2 quarter-hour rows per group, not 23 + 4;
  :func:`signed_plan`);
* a report by a scope without model, provider or deployment reads the scope's rows of
  every model together (``key_total``…, :data:`spendgate.ledger.rollups.TOTALS`): one row
  per value and bucket;
* each bucket is mapped to its local period in SQL, from the UTC offset in force at the
  bucket (a ``CASE`` over the zone's transitions in the range) or, for months, from the
  month boundaries.

Money is summed as integer nano-USD and shown as exact :class:`~decimal.Decimal` USD;
the totals are the sum of the rows, exactly. A row is shown when one of its figures is not
zero, whichever way it was read: read by difference, a group whose parts cancel out is no
group, and read as it is, a row of every figure zero can only be a key's adjustments
netting to zero (an adjustment counts no request: :mod:`spendgate.ledger.adjustments`).
Grouping by ``tag`` counts an event under each of its tags, so its totals can exceed the
spend of the same events grouped by team.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import partial, reduce
from itertools import accumulate, compress, islice, pairwise, repeat
from operator import itemgetter, ne, or_
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Select,
    String,
    any_,
    bindparam,
    case,
    false,
    func,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

from spendgate.core.money import from_nano
from spendgate.core.periods import Period, Window, get_timezone, iter_periods, period_for
from spendgate.core.scopes import ROLLUP_NAMES
from spendgate.ledger.adjustments import ADJUSTMENT_ROLLUP
from spendgate.ledger.report_plan import (
    REPORT_METRICS,
    bucket_conditions,
    grain_plan,
    shown,
    signed_plan,
    signed_rows,
)
from spendgate.ledger.report_top import MANY_VALUES, top_by_difference, top_groups
from spendgate.ledger.rollups import ATTRIBUTED, BREAKDOWNS, GRAINS, ROLLUP_KEY, TOTALS
from spendgate.stores.database.models import SpendRollup

__all__ = ["DIMENSIONS", "GRANULARITIES", "Report", "ReportRow", "Totals", "spend_report"]

# Report dimension → rollup scope type. The scope dimensions are named as the rollups name
# them (``org``, ``customer``; see spendgate.core.scopes); ``global`` is no dimension. The
# breakdowns (``endpoint``, ``mode``) are rolled up as scope types are, so they are read
# the same way (and, like them, one at a time).
SCOPE_DIMENSIONS = {name: name for name in (*ROLLUP_NAMES, *BREAKDOWNS) if name != "global"}
COLUMN_DIMENSIONS = {"model": "model", "provider": "provider", "deployment": "deployment_id"}
DIMENSIONS = (*SCOPE_DIMENSIONS, *COLUMN_DIMENSIONS)
GRANULARITIES = ("hour", "day", "week", "month")
_STEP = {"hour": 3600, "day": 86400, "week": 604800}
_WEEK_SHIFT = 4 * 86400  # 1970-01-01 was a Thursday; weeks start on Monday 1970-01-05.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ATTRIBUTED = frozenset(t for t, _ in ATTRIBUTED)
"""Scope dimensions every event has exactly one value of (``''`` for none)."""
_DAY = 86400
_DAYS = frozenset(("day", "week", "month"))
"""The granularities whose periods are made of local days."""


@dataclass(slots=True)
class Totals:
    """Summed metrics; money in integer nano-USD, shown as Decimal USD by :attr:`spend`."""

    cost_nanos: int = 0
    requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    unpriced_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_hits: int = 0
    """Calls answered from the gateway's response cache (no upstream call, no cost)."""
    saved_nanos: int = 0
    """What those cache hits would have cost."""

    @property
    def spend(self) -> Decimal:
        return from_nano(self.cost_nanos)

    @property
    def saved(self) -> Decimal:
        return from_nano(self.saved_nanos)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Totals) -> None:
        for name in REPORT_METRICS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in REPORT_METRICS}
        out["spend"] = str(self.spend)
        out["saved"] = str(self.saved)
        out["total_tokens"] = self.total_tokens
        return out


@dataclass(frozen=True, slots=True)
class ReportRow:
    period: Period | None
    """The local period (``None`` when the report has no granularity)."""
    dimensions: tuple[str, ...]
    values: tuple[str | None, ...]
    """One value per dimension; ``None`` for events without one (no team, no tag…)."""
    totals: Totals

    @property
    def group(self) -> dict[str, str | None]:
        """Dimension → value."""
        return dict(zip(self.dimensions, self.values, strict=True))


class Report:
    """A spend report. Its rows are kept column by column (:attr:`columns`), the compact
    form a large report (a month by hour × team × model is 43,200 rows) is cheap to
    build and to serialise in; :attr:`rows` builds one :class:`ReportRow` each, on first
    use."""

    __slots__ = (
        "_rows", "columns", "end", "grain", "granularity", "group_by", "other_groups", "start", "timezone",
        "totals",
    )  # fmt: skip

    def __init__(
        self,
        *,
        group_by: tuple[str, ...],
        granularity: str | None,
        timezone: str,
        start: datetime,
        end: datetime,
        grain: int,
        columns: dict[str, list[Any]] | None = None,
        totals: Totals | None = None,
        other_groups: int = 0,
    ) -> None:
        self.group_by = group_by
        self.granularity = granularity
        self.timezone = timezone
        self.start = start
        """The covered range, widened to whole periods: ``[start, end)`` (UTC)."""
        self.end = end
        self.grain = grain
        """The rollup bucket width (seconds) the report was computed from."""
        self.columns: dict[str, list[Any]] = columns if columns is not None else _empty_columns(group_by)
        """The rows column by column: ``period`` (a :class:`Period`, ``None`` without a
        granularity), then one column per dimension of :attr:`group_by` (``str | None``),
        then one per metric of :class:`Totals` (``int``; money in nano-USD); with ``top``,
        ``other`` (``bool``): the row sums the groups beyond the top ones."""
        self.totals = totals if totals is not None else Totals()
        """The sum of the rows, exactly."""
        self.other_groups = other_groups
        """With ``top``: how many groups beyond the top ones are summed in the rows whose
        ``columns["other"]`` is true (their dimension value is ``None``)."""
        self._rows: list[ReportRow] | None = None

    @property
    def row_count(self) -> int:
        return len(self.columns["period"])

    @property
    def rows(self) -> list[ReportRow]:
        """One :class:`ReportRow` per row, in order: by period, then by the dimension
        values (byte order, none first)."""
        if self._rows is None:
            group = self.group_by
            values = zip(*(self.columns[d] for d in group), strict=True) if group else repeat(())
            metrics = zip(*(self.columns[m] for m in REPORT_METRICS), strict=True)
            self._rows = [
                ReportRow(period, group, vals, Totals(*m))
                for period, vals, m in zip(self.columns["period"], values, metrics, strict=False)
            ]
        return self._rows

    def to_dict(self) -> dict[str, Any]:
        zone = get_timezone(self.timezone)
        starts: dict[Period, str] = {}
        periods = self.columns["period"]
        for p in dict.fromkeys(periods):
            if p is not None:
                starts[p] = p.start.astimezone(zone).isoformat()
        names = ["period_start", *self.group_by, *REPORT_METRICS]
        cols: list[Iterable[Any]] = [
            [None if p is None else starts[p] for p in periods],
            *(self.columns[d] for d in self.group_by),
            *(self.columns[m] for m in REPORT_METRICS),
        ]
        rows = []
        for record in zip(*cols, strict=True):
            row = dict(zip(names, record, strict=True))
            row["spend"] = str(from_nano(row["cost_nanos"]))
            row["saved"] = str(from_nano(row["saved_nanos"]))
            row["total_tokens"] = row["input_tokens"] + row["output_tokens"]
            rows.append(row)
        return {
            "group_by": list(self.group_by),
            "granularity": self.granularity,
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": rows,
            "totals": self.totals.to_dict(),
        }


def _empty_columns(group_by: Iterable[str]) -> dict[str, list[Any]]:
    return {name: [] for name in ("period", *group_by, *REPORT_METRICS)}


def _is_postgres(db: AsyncEngine | AsyncConnection | AsyncSession) -> bool:
    bind = db.bind if isinstance(db, AsyncSession) else db
    return bind is not None and bind.dialect.name == "postgresql"


def _epoch(at: datetime) -> int:
    delta = at - _EPOCH  # aware datetimes subtract across zones exactly
    return delta.days * 86400 + delta.seconds


def _epoch_micros(at: datetime) -> int:
    delta = at.astimezone(UTC) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _offset_segments(zone: tzinfo, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """``[(from_epoch, utc_offset_seconds), …]`` covering ``[start, end)``."""

    def offset(at_epoch: int) -> int:
        moment = _EPOCH + timedelta(seconds=at_epoch)
        off = moment.astimezone(zone).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    lo_t, hi_t = _epoch(start), _epoch(end)
    segments = [(lo_t, offset(lo_t))]
    step = 6 * 3600
    t = lo_t
    while t < hi_t:
        nxt = min(t + step, hi_t)
        if offset(nxt) != segments[-1][1]:
            lo, hi = t, nxt  # offset(lo) == current, offset(hi) differs: bisect to the second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == segments[-1][1]:
                    lo = mid
                else:
                    hi = mid
            segments.append((hi, offset(hi)))
            t = hi
        else:
            t = nxt
    return segments


def _utc_hours(zone: tzinfo, lo: datetime, hi: datetime) -> list[Period] | None:
    """The hourly periods of ``[lo, hi)`` when each is one UTC hour: the zone's offsets in
    the range are whole hours and never step back (a repeated autumn hour is one period
    of two UTC hours). ``None`` otherwise. The same periods as
    :func:`~spendgate.core.periods.iter_periods` (the report tests compare them), built
    without a calendar lookup per hour: a month by hour is 720 periods."""
    segments = _offset_segments(zone, lo, hi)
    if any(offset % 3600 for _, offset in segments) or any(b < a for (_, a), (_, b) in pairwise(segments)):
        return None
    hour = timedelta(hours=1)
    starts = [lo + i * hour for i in range(_epoch(hi) // 3600 - _epoch(lo) // 3600)]
    return [Period(s, s + hour, s.astimezone(zone).isoformat()) for s in starts]


def _period_index(
    granularity: str,
    periods: list[Period],
    zone: tzinfo,
    start: datetime,
    end: datetime,
    bucket: ColumnElement[Any],
) -> tuple[ColumnElement[Any], dict[int, Period]]:
    """A SQL expression mapping ``bucket`` (a rollup bucket's start) to an integer period
    index, and the index → period map. A bucket is mapped by its start, so it must lie in
    one period (a bucket of the report's grain always does; an hourly bucket read in a
    15-minute report only when no period boundary falls inside its hour)."""
    if granularity == "month":
        whens = [(bucket < _epoch(p.end), i) for i, p in enumerate(periods[:-1])]
        expr: ColumnElement[Any] = case(*whens, else_=len(periods) - 1) if whens else literal(0)
        return expr, dict(enumerate(periods))
    segments = _offset_segments(zone, start, end)
    if len(segments) == 1:
        offset: ColumnElement[Any] = literal(segments[0][1])
    else:
        offset = case(
            *[(bucket < segments[i + 1][0], segments[i][1]) for i in range(len(segments) - 1)],
            else_=segments[-1][1],
        )
    step = _STEP[granularity]
    shift = _WEEK_SHIFT if granularity == "week" else 0
    expr = (bucket + offset - shift) // step
    index = {}
    for p in periods:
        wall = p.start.astimezone(zone).replace(tzinfo=None) - datetime(1970, 1, 1)
        index[(int(wall.total_seconds()) - shift) // step] = p
    return expr, index


def _every_value(dimension: str) -> list[list[ColumnElement[bool]]] | None:
    """Conditions on the rollup rows that sum, per bucket, to every value's rows of a scope
    ``dimension`` (see :func:`~spendgate.ledger.report_top.top_by_difference`): ``global``,
    for the scopes every event has one value of (``''`` for none), and for keys their
    adjustments too (they are in the key's rows only). ``None`` for tags (an event counts
    under each of its tags) and the rest."""
    if dimension not in _ATTRIBUTED:
        return None
    table = SpendRollup.__table__.c
    every = [[table.scope_type == "global", table.scope_id == ""]]
    if dimension == "key":
        every.append([table.scope_type == ADJUSTMENT_ROLLUP])
    return every


async def spend_report(
    db: AsyncEngine | AsyncConnection | AsyncSession,
    *,
    start: datetime,
    end: datetime,
    group_by: list[str] | tuple[str, ...] = (),
    granularity: str | None = None,
    tz: str | tzinfo | None = "UTC",
    scope_ids: Collection[str] | None = None,
    top: int | None = None,
) -> Report:
    """Spend, tokens and request counts over ``[start, end)``.

    Args:
        db: an engine, connection or session.
        start, end: timezone-aware instants; widened to whole periods (see module doc).
        group_by: dimensions from :data:`DIMENSIONS`; at most one of key / user / team /
            org / customer / tag / endpoint / mode (``batch`` or ``realtime``), combined
            with any of model / provider, or deployment with neither of those.
        granularity: ``hour``, ``day``, ``week``, ``month`` or ``None`` (one row per group).
        tz: the IANA timezone periods are computed in.
        scope_ids: keep only the rows of these ids of the scope dimension grouped by
            (``''`` is "none": events without a team, a tag…); ``None`` keeps every id.
            The filter is in SQL (one bound parameter, an array on PostgreSQL), read
            through ``ix_spend_rollups_scope``, so a report about a few teams or keys
            reads their rows only, not every scope id's.
        top: keep the ``top`` values of the one dimension grouped by with the highest cost
            over the whole range (ties: by value); each period's rows of the others are
            summed into one row marked ``other`` (:attr:`Report.columns`). In SQL, so a
            month of 2,000 keys by day answers 31 × (top + 1) rows; the totals are the
            same, exactly. The values ranked are those with a row in the report without
            ``top``; a rest row is shown, as any row, when a figure is not zero.

    Raises:
        ValueError: an unknown dimension or granularity, two scope dimensions, naive or
            empty range, ``scope_ids`` without a scope dimension in ``group_by``.
    """
    group = tuple(group_by)
    for dim in group:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; choose from {', '.join(DIMENSIONS)}")
    if len(set(group)) != len(group):
        raise ValueError("a dimension is repeated in group_by")
    scopes = [d for d in group if d in SCOPE_DIMENSIONS]
    if len(scopes) > 1:
        raise ValueError(
            f"cannot group by both {scopes[0]!r} and {scopes[1]!r}: rollups are kept per scope or "
            "breakdown (one of key/user/team/org/customer/tag/endpoint/mode), combined with "
            "model/provider/deployment"
        )
    if scopes and "deployment" in group:
        raise ValueError(
            f"cannot group by both {scopes[0]!r} and 'deployment': deployments are rolled up "
            "globally only (group by deployment with model/provider)"
        )
    if scope_ids is not None and not scopes:
        raise ValueError(
            "scope_ids narrows a scope dimension: group by one of "
            "key/user/team/org/customer/tag/endpoint/mode"
        )
    if top is not None and (len(group) != 1 or top < 1):
        raise ValueError("top keeps the highest groups of exactly one dimension: a positive count")
    if granularity is not None and granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; choose from {', '.join(GRANULARITIES)}")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    zone = get_timezone(tz)
    tz_name = str(tz) if tz is not None else "UTC"

    periods: list[Period] = []
    if granularity is not None:
        window = Window(granularity)
        lo = period_for(window, start, zone).start
        hi = period_for(
            window, max(end, start + timedelta(microseconds=1)) - timedelta(microseconds=1), zone
        ).end
        hours = _utc_hours(zone, lo, hi) if granularity == "hour" else None
        periods = hours if hours is not None else iter_periods(window, lo, hi, zone)
        boundaries = [_epoch(p.start) for p in periods] + [_epoch(hi)]
    else:
        lo_s = _epoch(start) // 900 * 900
        hi_s = max(-(-_epoch_micros(end) // 900_000_000) * 900, lo_s + 900)
        lo, hi = _EPOCH + timedelta(seconds=lo_s), _EPOCH + timedelta(seconds=hi_s)
        boundaries = [lo_s, hi_s]
    grain = max(g for g in GRAINS if all(b % g == 0 for b in boundaries))

    postgres = _is_postgres(db)
    scope_type = SCOPE_DIMENSIONS[scopes[0]] if scopes else "global"
    if scope_type in TOTALS and not any(d in COLUMN_DIMENSIONS for d in group):
        scope_type = TOTALS[scope_type]  # one row per value and bucket, not one per model
    table = SpendRollup.__table__.c
    # When every period is one rollup bucket (hourly periods on the hourly grain, unless
    # the range has a repeated autumn hour), a group is the rollup rows of one bucket with
    # the same dimension values: read those rows in that order (PostgreSQL streams them
    # out of ix_spend_rollups_report, no hash table, no sort) and add up, in Python, the
    # neighbours that differ only in a key column the report does not show (a model under
    # two providers, say). Only when the report keeps the model: otherwise a group is
    # every model's row of its bucket (a customer's day: 40 rows, a key's: 3), and the
    # database groups them by period (a month of 500 customers by day: 881 → 132 ms).
    per_bucket = (
        granularity is not None
        and "model" in group
        and top is None
        and all(b - a == grain for a, b in pairwise(boundaries))
    )
    conditions = [table.scope_type == scope_type]
    if scope_type == "global":
        conditions.append(table.scope_id == "")  # always true; lets the index order serve
    if scope_ids is not None:
        conditions.append(_scope_id_in(sorted(set(scope_ids)), postgres))
    plan = grain_plan(boundaries, grain)
    # Local days, weeks and months of a zone off UTC midnight (see signed_plan).
    signed = signed_plan(boundaries, grain) if granularity in _DAYS and grain < _DAY else None
    if signed is not None:
        by = ["scope_id" if d in SCOPE_DIMENSIONS else COLUMN_DIMENSIONS[d] for d in group]
        source = signed_rows(signed, conditions, by, boundaries[0], boundaries[-1], postgres)
        table = source.c
        conditions = []
    elif len(plan) == 1:  # one grain: the base, over the whole range
        conditions += [table.grain == grain, table.bucket >= _epoch(lo), table.bucket < _epoch(hi)]
    else:
        # Periods made of several buckets of a coarser grain (whole UTC days inside a
        # Berlin month, whole hours inside an Asia/Kolkata day): each stretch of the range
        # is read from the coarsest grain whose buckets lie inside one period, and only
        # the edges from the finer ones (a Kolkata day: 23 hourly rows and 4 quarter-hour
        # rows per group, not 96). Every instant is in exactly one bucket read: the same
        # totals, exactly.
        read = [table[c] for c in (*ROLLUP_KEY, *REPORT_METRICS)]
        source = union_all(
            *(
                select(*read).where(table.grain == g, *bucket_conditions(g, buckets, postgres), *conditions)
                for g, buckets in plan
            )
        ).subquery("buckets")
        table = source.c
        conditions = []
    # Byte order ("C") for the dimension values: the same order on both databases, and
    # much cheaper than a linguistic collation on PostgreSQL.
    dims: list[ColumnElement[Any]] = []
    for dim in group:
        column = table.scope_id if dim in SCOPE_DIMENSIONS else table[COLUMN_DIMENSIONS[dim]]
        dims.append(column.collate("C") if postgres else column)
    period_map: dict[int, Period] = {}
    keys: list[ColumnElement[Any]] = []
    if per_bucket:
        keys.append(table.bucket)
        period_map = dict(zip(boundaries, periods, strict=False))
    elif granularity is not None:
        period_expr, period_map = _period_index(granularity, periods, zone, lo, hi, table.bucket)
        keys.append(period_expr)
    keys += dims
    labels = [k.label(f"k{i}") for i, k in enumerate(keys)]
    if per_bucket:
        rest = [table[c] for c in ("scope_id", "model", "provider", "deployment_id")]
        stmt = (
            select(*labels, *[table[m] for m in REPORT_METRICS])
            .where(*conditions)
            .order_by(*keys, *[c.collate("C") if postgres else c for c in rest])
        )
    else:
        # PostgreSQL's sum(bigint) is NUMERIC, slow to build and decode: spendgate_sum (an
        # aggregate of BIGINT addition, migration 0003) stays BIGINT and raises on overflow.
        total = func.spendgate_sum if postgres else func.sum
        sums = [total(table[m]).label(m) for m in REPORT_METRICS]
        grouped = select(*labels, *sums).where(*conditions).having(shown(sums))
        every_value = _every_value(group[0]) if top is not None and scope_ids is None else None
        if top is not None and signed is not None and every_value is not None:
            # By difference, from a sum of every value kept on its own: read per period only
            # the top values' rows (a month of 2,000 keys per Kolkata day: 1.2 M rows).
            a, b = boundaries[0], boundaries[-1]
            over_range = signed_plan([a, b], grain)
            assert over_range is not None  # one period of whole local days is longer than its pieces
            unit = granularity  # signed: days, weeks or months
            assert unit is not None
            stmt = top_by_difference(
                lambda where, name: signed_rows(signed, where, ["scope_id"], a, b, postgres, name),
                lambda where, name: signed_rows(over_range, where, ["scope_id"], a, b, postgres, name),
                lambda bucket: _period_index(unit, periods, zone, lo, hi, bucket)[0],
                scope_type,
                every_value,
                top,
                postgres,
            )
        elif top is not None:
            # Over signed rows, a group exists when its parts do not cancel out: the groups
            # are summed first, once (a month of 200 teams per Kolkata day: 6,000 groups).
            many = group[0] in MANY_VALUES and signed is None
            stmt = top_groups(table, conditions, keys, top, postgres, many=many)
        elif postgres:
            # Grouped in a materialized CTE, sorted outside it: PostgreSQL estimates the
            # groups from per-column statistics (a month of days × teams × models: 572,000,
            # when there are 18,000), so, planning the grouping and the order together, it
            # sorts every input row rather than hash them. A materialized CTE is planned on
            # its own, without a wanted order; with sorting discouraged (_PG_SETTINGS) it
            # hashes the rows in work_mem (a hash aggregate spills beyond, never grows
            # unbounded), and only the groups are sorted: 413 ms → 213 ms in PostgreSQL for
            # that month (docs/benchmarks.md, issue #13).
            inner = grouped.group_by(*keys).cte("g").prefix_with("MATERIALIZED")
            stmt = select(*inner.c).order_by(*[inner.c[label.name] for label in labels])
        else:
            stmt = grouped.group_by(*keys).order_by(*keys)

    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            data = await _fetch_columns(conn, stmt)
    elif isinstance(db, AsyncSession):
        data = await _fetch_columns(await db.connection(), stmt)
    else:
        data = await _fetch_columns(db, stmt)

    n = len(keys)
    other: list[bool] | None = None
    folded = 0
    if top is not None:
        kept, groups = data[n + len(REPORT_METRICS) :]
        data = data[: n + len(REPORT_METRICS)]
        other = [not k for k in kept]
        folded = max(0, int(groups[0] or 0) - top) if groups else 0
    if not keys and data[1] == [None]:
        data = [[] for _ in data]  # SUM over no rows without grouping: no row
    if per_bucket:
        data = _drop_zero_rows(_add_up_neighbours(data, n), n)
    count = len(data[0])
    columns: dict[str, list[Any]] = {
        "period": list(map(period_map.__getitem__, data[0])) if granularity is not None else [None] * count
    }
    for i, dim in enumerate(group, start=n - len(group)):
        # '' is "none" (no team, no tag…)
        columns[dim] = [value or None for value in data[i]] if "" in data[i] else data[i]
    for i, metric in enumerate(REPORT_METRICS, start=n):
        columns[metric] = data[i]
    if other is not None:
        columns["other"] = other
        for dim in group:
            columns[dim] = [None if o else v for v, o in zip(columns[dim], other, strict=True)]
    totals = Totals(*(sum(columns[m]) for m in REPORT_METRICS))
    return Report(
        group_by=group,
        granularity=granularity,
        timezone=tz_name,
        start=lo,
        end=hi,
        grain=grain,
        columns=columns,
        totals=totals,
        other_groups=folded,
    )


def _drop_zero_rows(data: list[list[Any]], n: int) -> list[list[Any]]:
    """Columns of rows (``n`` key columns, then the figures) less the rows whose every
    figure is zero (see :func:`spend_report`)."""
    shown = list(map(any, zip(*data[n:], strict=True)))
    if all(shown):
        return data
    return [list(compress(column, shown)) for column in data]


def _scope_id_in(ids: list[str], postgres: bool) -> ColumnElement[bool]:
    """``scope_id`` is one of ``ids``, as bound parameters. On PostgreSQL one array
    parameter (``= ANY($n)``): a single placeholder however many ids, which the
    report's hand-compiled statement (:func:`_fetch_columns`) binds as it is."""
    column = SpendRollup.__table__.c.scope_id
    if not ids:
        return false()
    if postgres:
        return column == any_(bindparam("scope_ids", ids, type_=ARRAY(String())))
    return column.in_(ids)


def _add_up_neighbours(data: list[list[Any]], n: int) -> list[list[Any]]:
    """Columns of rows sorted by their first ``n`` columns (the key), with the rows of
    equal keys added up into one (the other columns are integers). In C where it can."""

    def new_key() -> Iterator[bool]:  # per row after the first: does its key differ?
        return reduce(partial(map, or_), (map(ne, islice(c, 1, None), c) for c in data[:n]))

    if n == 0 or all(new_key()):
        return data
    starts = [0, *compress(range(1, len(data[0])), new_key())]
    ends = [*starts[1:], len(data[0])]
    out = [[column[i] for i in starts] for column in data[:n]]
    for column in data[n:]:
        running = list(accumulate(column, initial=0))
        out.append([running[e] - running[s] for s, e in zip(starts, ends, strict=True)])
    return out


async def _fetch_columns(conn: AsyncConnection, stmt: Select[Any]) -> list[list[Any]]:
    """The report's rows, column by column.

    On PostgreSQL the database packs each column into one array (a month of hourly rows
    is tens of thousands), which the driver decodes straight into a list: no row objects
    and no transposing in Python. The statement runs with the planner settings of
    :data:`_PG_SETTINGS`, which are put back as they were afterwards: they are for this
    statement, not for the rest of the caller's transaction.
    """
    if conn.dialect.name != "postgresql":
        rows = (await conn.execute(stmt)).all()
        return [list(map(itemgetter(i), rows)) for i in range(len(stmt.selected_columns))]
    # array_agg over the ordered subquery keeps its order (PostgreSQL feeds an aggregate
    # the rows of a sorted subquery in order); all columns come from the same row stream,
    # so they stay aligned whatever happens.
    rows = stmt.subquery("r")
    packed, params = _compiled(select(*[func.array_agg(c) for c in rows.c]), conn.dialect)
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    # Through SQLAlchemy, which opens the connection's transaction first if none is open:
    # set_config(..., true) lasts until the end of the transaction, and without one it
    # would end with its own statement. (On an error the transaction is aborted, and its
    # rollback undoes the settings.)
    before = (await conn.execute(_PG_SETTINGS)).one()
    record = await driver.fetchrow(packed.string, *(params[name] for name in packed.positiontup or ()))
    await conn.execute(_PG_RESTORE, {"work_mem": before[0], "jit": before[1], "sort": before[2]})
    assert record is not None
    return [c if c is not None else [] for c in record]  # arrays arrive as lists


_COMPILED: dict[Any, SQLCompiler] = {}
_COMPILED_KEPT = 256


def _compiled(stmt: ClauseElement, dialect: Dialect) -> tuple[SQLCompiler, Mapping[str, Any]]:
    """``stmt`` compiled for ``dialect``, with its parameters' values. A report's statement
    is large (tens of kB of SQL) and compiling it costs ~30 ms; the same report asked again
    (a page reloaded, another range of the same shape) has the same structure, so the
    compiled form is kept per structure (SQLAlchemy's cache key, as its own statement cache
    keys it; the values are this statement's) and only the values are taken anew."""
    key = stmt._generate_cache_key()
    name = None if key is None else (dialect.name, key.key)
    found = _COMPILED.get(name) if name is not None else None
    if found is None:  # (a construct without a cache key is compiled each time)
        compiled = (
            stmt.compile(dialect=dialect) if key is None else stmt.compile(dialect=dialect, cache_key=key)
        )
        assert isinstance(compiled, SQLCompiler)
        found = compiled
        if name is not None:
            if len(_COMPILED) >= _COMPILED_KEPT:
                _COMPILED.clear()
            _COMPILED[name] = found
    if key is None:
        return found, found.params
    return found, found.construct_params(extracted_parameters=key.bindparams)


# For the report's statement only (transaction-local, restored after it by _PG_RESTORE):
# a bounded 64 MB of work_mem, enough to hash or sort a month of hourly groups without
# spilling (a hash aggregate spills to disk beyond work_mem × hash_mem_multiplier, so the
# bound holds whatever the planner estimated); no JIT (compiling the query would cost more
# than running it); and no sort where the planner has another way: the groups come in
# index order (hourly periods) or from a hash aggregate, and only the groups are sorted
# (see spend_report). The first three columns are the values in force before.
_PG_SETTINGS = text(
    "SELECT current_setting('work_mem'), current_setting('jit'), current_setting('enable_sort'), "
    "set_config('work_mem', '64MB', true), set_config('jit', 'off', true), "
    "set_config('enable_sort', 'off', true)"
)
_PG_RESTORE = text(
    "SELECT set_config('work_mem', :work_mem, true), set_config('jit', :jit, true), "
    "set_config('enable_sort', :sort, true)"
)
