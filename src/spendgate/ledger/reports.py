"""Spend reports: spend, tokens and requests grouped by dimensions and calendar periods.

Reports read the rollups, never the raw events, so a report over months costs the same
as one over a day. They are exact in any IANA timezone:

* the range is widened to whole periods of the granularity in ``tz`` (to whole 15-minute
  buckets when there is no granularity), and the report says which range it covers;
* the rollup grain is the coarsest of 1 day / 1 hour / 15 minutes that divides every
  period boundary (:mod:`spendgate.ledger.rollups` explains why 15 minutes always does);
* each bucket is mapped to its local period in SQL, from the UTC offset in force at the
  bucket (a ``CASE`` over the zone's transitions in the range) or, for months, from the
  month boundaries.

Money is summed as integer nano-USD and shown as exact :class:`~decimal.Decimal` USD;
the totals are the sum of the rows, exactly. Grouping by ``tag`` counts an event under
each of its tags, so its totals can exceed the spend of the same events grouped by team.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from operator import add
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, case, cast, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from spendgate.core.money import from_nano
from spendgate.core.periods import Period, Window, get_timezone, iter_periods, period_for
from spendgate.ledger.rollups import GRAINS
from spendgate.stores.database.models import SpendRollup

__all__ = ["DIMENSIONS", "GRANULARITIES", "Report", "ReportRow", "Totals", "spend_report"]

SCOPE_DIMENSIONS = {
    "key": "key",
    "user": "user",
    "team": "team",
    "org": "org",
    "customer": "customer",
    "tag": "tag",
}
COLUMN_DIMENSIONS = {"model": "model", "provider": "provider", "deployment": "deployment_id"}
DIMENSIONS = (*SCOPE_DIMENSIONS, *COLUMN_DIMENSIONS)
GRANULARITIES = ("hour", "day", "week", "month")
_STEP = {"hour": 3600, "day": 86400, "week": 604800}
_WEEK_SHIFT = 4 * 86400  # 1970-01-01 was a Thursday; weeks start on Monday 1970-01-05.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_METRICS = (
    "cost_nanos",
    "requests",
    "successful_requests",
    "failed_requests",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


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

    @property
    def spend(self) -> Decimal:
        return from_nano(self.cost_nanos)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Totals) -> None:
        for name in _METRICS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _METRICS}
        out["spend"] = str(self.spend)
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


@dataclass(slots=True)
class Report:
    group_by: tuple[str, ...]
    granularity: str | None
    timezone: str
    start: datetime
    """The covered range, widened to whole periods: ``[start, end)`` (UTC)."""
    end: datetime
    grain: int
    """The rollup bucket width (seconds) the report was computed from."""
    rows: list[ReportRow] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_by": list(self.group_by),
            "granularity": self.granularity,
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rows": [
                {
                    "period_start": r.period.start.astimezone(get_timezone(self.timezone)).isoformat()
                    if r.period
                    else None,
                    **r.group,
                    **r.totals.to_dict(),
                }
                for r in self.rows
            ],
            "totals": self.totals.to_dict(),
        }


def _is_postgres(db: AsyncEngine | AsyncConnection | AsyncSession) -> bool:
    bind = db.bind if isinstance(db, AsyncSession) else db
    return bind is not None and bind.dialect.name == "postgresql"


def _epoch(at: datetime) -> int:
    delta = at.astimezone(UTC) - _EPOCH
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


def _period_index(
    granularity: str, periods: list[Period], zone: tzinfo, start: datetime, end: datetime
) -> tuple[ColumnElement[Any], dict[int, Period]]:
    """A SQL expression mapping ``spend_rollups.bucket`` to an integer period index, and
    the index → period map."""
    bucket = SpendRollup.bucket
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


async def spend_report(
    db: AsyncEngine | AsyncConnection | AsyncSession,
    *,
    start: datetime,
    end: datetime,
    group_by: list[str] | tuple[str, ...] = (),
    granularity: str | None = None,
    tz: str | tzinfo | None = "UTC",
) -> Report:
    """Spend, tokens and request counts over ``[start, end)``.

    Args:
        db: an engine, connection or session.
        start, end: timezone-aware instants; widened to whole periods (see module doc).
        group_by: dimensions from :data:`DIMENSIONS`; at most one of key / user / team /
            org / customer / tag, combined with any of model / provider / deployment.
        granularity: ``hour``, ``day``, ``week``, ``month`` or ``None`` (one row per group).
        tz: the IANA timezone periods are computed in.

    Raises:
        ValueError: an unknown dimension or granularity, two scope dimensions, naive or
            empty range.
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
            f"cannot group by both {scopes[0]!r} and {scopes[1]!r}: rollups are kept per scope "
            "(one of key/user/team/org/customer/tag), combined with model/provider/deployment"
        )
    if scopes and "deployment" in group:
        raise ValueError(
            f"cannot group by both {scopes[0]!r} and 'deployment': deployments are rolled up "
            "globally only (group by deployment with model/provider)"
        )
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
        periods = iter_periods(window, lo, hi, zone)
        boundaries = [_epoch(p.start) for p in periods] + [_epoch(hi)]
    else:
        lo_s = _epoch(start) // 900 * 900
        hi_s = max(-(-_epoch_micros(end) // 900_000_000) * 900, lo_s + 900)
        lo, hi = _EPOCH + timedelta(seconds=lo_s), _EPOCH + timedelta(seconds=hi_s)
        boundaries = [lo_s, hi_s]
    grain = max(g for g in GRAINS if all(b % g == 0 for b in boundaries))

    scope_type = SCOPE_DIMENSIONS[scopes[0]] if scopes else "global"
    table = SpendRollup.__table__.c
    keys: list[ColumnElement[Any]] = [
        table.scope_id if d in SCOPE_DIMENSIONS else table[COLUMN_DIMENSIONS[d]] for d in group
    ]
    labels = [f"d{i}" for i in range(len(keys))]
    index_map: dict[int, Period] = {}
    if granularity is not None:
        period_expr, index_map = _period_index(granularity, periods, zone, lo, hi)
        keys.append(period_expr)
        labels.append("p")
    # Sums cast back to BIGINT: PostgreSQL's sum(bigint) is NUMERIC, slow to decode.
    sums = [cast(func.sum(getattr(SpendRollup, m)), BigInteger).label(m) for m in _METRICS]
    # Byte order ("C") for the dimension values: the same order on both databases, and
    # much cheaper than a linguistic collation on PostgreSQL.
    dim_order = [k.collate("C") if _is_postgres(db) else k for k in keys[: len(group)]]
    order = ([keys[-1]] if granularity is not None else []) + dim_order
    stmt = (
        select(
            *[(func.nullif(k, "") if n != "p" else k).label(n) for k, n in zip(keys, labels, strict=True)],
            *sums,
        )
        .where(
            SpendRollup.grain == grain,
            SpendRollup.scope_type == scope_type,
            SpendRollup.bucket >= _epoch(lo),
            SpendRollup.bucket < _epoch(hi),
        )
        .group_by(*keys)
        .order_by(*order)
    )

    async def run(conn: AsyncConnection) -> list[Any]:
        if conn.dialect.name == "postgresql":
            # Enough memory to hash-aggregate a month of hourly groups without spilling.
            await conn.execute(text("SET LOCAL work_mem = '64MB'"))
        return list((await conn.execute(stmt)).all())

    if isinstance(db, AsyncEngine):
        async with db.connect() as conn:
            result = await run(conn)
    elif isinstance(db, AsyncSession):
        result = await run(await db.connection())
    else:
        result = await run(db)

    report = Report(group_by=group, granularity=granularity, timezone=tz_name, start=lo, end=hi, grain=grain)
    rows = []
    n = len(group)
    k = len(_METRICS)
    columns = [0] * k
    for rec in result:
        if rec[-k + 1] is None:  # SUM over no rows (no grouping): no row
            continue
        metrics = rec[-k:]
        columns = list(map(add, columns, metrics))
        period = index_map[rec[n]] if granularity is not None else None
        rows.append(ReportRow(period, group, tuple(rec[:n]), Totals(*metrics)))
    report.totals = Totals(*columns)
    report.rows = rows
    return report
