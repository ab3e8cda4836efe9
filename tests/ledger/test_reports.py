"""Reports: exact across DST changes, in order, and the same in their three forms
(columns, rows, dict). The property test in test_reports_match_events.py covers
random events; these pin the paths a month-long hourly report takes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.periods import period_for
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.reports import ReportRow, Totals, spend_report
from spendgate.ledger.repository import LedgerRepository

pytestmark = pytest.mark.asyncio


def _period_start(row: ReportRow) -> datetime:
    assert row.period is not None
    return row.period.start


def _by_hour(events: list[SpendEvent], tz: str) -> dict[tuple[datetime, str | None], tuple[int, int]]:
    acc: dict[tuple[datetime, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        a = acc[(period_for("hour", e.occurred_at, tz).start, e.team_id or None)]
        a[0] += e.cost_nanos
        a[1] += 1
    return {k: (v[0], v[1]) for k, v in acc.items()}


@pytest.mark.parametrize(
    ("day", "day_hours", "longest"),
    [(datetime(2026, 3, 29, tzinfo=UTC), 23, 1), (datetime(2026, 10, 25, tzinfo=UTC), 25, 2)],
    ids=["spring-forward", "fall-back"],
)
async def test_hourly_report_is_exact_across_a_dst_change(
    engine: AsyncEngine, day: datetime, day_hours: int, longest: int
) -> None:
    """Europe/Berlin: the spring day has 23 local hours, each one rollup bucket (the
    report groups by bucket); the autumn day's repeated 02:00 hour spans two UTC hours
    (the report maps buckets to periods). Both must equal the raw events."""
    start = day - timedelta(hours=2)  # local midnight (+02:00 before either change)
    events = [
        make_event(
            i,
            event_id=f"dst-{i}",
            occurred_at=start + timedelta(minutes=17 * i),
            cost_nanos=1_000 + i,
            team_id=("t1", "t2", None)[i % 3],
        )
        for i in range(26 * 60 // 17)
    ]
    await LedgerRepository(engine).write_batch(events)
    tz = "Europe/Berlin"
    end = start + timedelta(hours=day_hours)  # the next local midnight
    report = await spend_report(engine, start=start, end=end, group_by=["team"], granularity="hour", tz=tz)
    assert (report.grain, report.start, report.end) == (3600, start, end)
    inside = [e for e in events if start <= e.occurred_at < end]
    got = {(_period_start(r), r.values[0]): (r.totals.cost_nanos, r.totals.requests) for r in report.rows}
    assert got == _by_hour(inside, tz)
    periods = {r.period for r in report.rows if r.period}
    assert len(periods) == (24 if longest == 2 else day_hours)  # the repeated hour is one period
    assert max(p.end - p.start for p in periods) == timedelta(hours=longest)
    assert report.totals.requests == len(inside)


async def test_columns_rows_and_dict_agree_and_are_ordered(engine: AsyncEngine) -> None:
    t0 = datetime(2026, 11, 18, 10, tzinfo=UTC)
    events = [
        make_event(
            i,
            event_id=f"o-{i}",
            occurred_at=t0 + timedelta(minutes=41 * i),
            model=("b-model", "a-model", "")[i % 3],
            team_id=("team-b", None, "team-a", "Team-Z")[i % 4],
        )
        for i in range(40)
    ]
    await LedgerRepository(engine).write_batch(events)
    report = await spend_report(
        engine, start=t0, end=t0 + timedelta(days=2), group_by=["team", "model"], granularity="hour"
    )
    cols = report.columns
    assert list(cols) == ["period", "team", "model", *Totals.__dataclass_fields__]
    assert report.row_count == len(report.rows) == len(cols["period"]) > 0
    keys = [
        (p.start, t or "", m or "")
        for p, t, m in zip(cols["period"], cols["team"], cols["model"], strict=True)
    ]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1].encode(), k[2].encode()))  # byte order, none first
    assert None in cols["team"] and None in cols["model"] and "" not in cols["team"]
    for i, row in enumerate(report.rows):
        assert row.period is cols["period"][i]
        assert row.group == {"team": cols["team"][i], "model": cols["model"][i]}
        assert row.totals == Totals(*(cols[m][i] for m in Totals.__dataclass_fields__))
    total = Totals()
    for row in report.rows:
        total.add(row.totals)
    assert total == report.totals and report.totals.requests == 40
    as_dict = report.to_dict()
    assert len(as_dict["rows"]) == report.row_count
    first = as_dict["rows"][0]
    assert list(first)[:3] == ["period_start", "team", "model"]
    assert first["period_start"] == _period_start(report.rows[0]).isoformat()  # UTC report
    assert first["spend"] == str(report.rows[0].totals.spend)
    assert first["total_tokens"] == report.rows[0].totals.total_tokens
    assert as_dict["totals"] == report.totals.to_dict()


@pytest.mark.parametrize("granularity", [None, "hour", "day"])
@pytest.mark.parametrize("group_by", [[], ["model"], ["tag", "provider"]])
async def test_empty_range_gives_no_rows(
    engine: AsyncEngine, granularity: str | None, group_by: list[str]
) -> None:
    await LedgerRepository(engine).write_batch([make_event(1)])  # outside the range
    start = datetime(2025, 1, 1, tzinfo=UTC)
    report = await spend_report(
        engine, start=start, end=start + timedelta(days=3), group_by=group_by, granularity=granularity
    )
    assert report.rows == [] and report.row_count == 0 and report.totals == Totals()
    assert report.to_dict()["rows"] == []


async def test_global_report_by_model_and_deployment(engine: AsyncEngine) -> None:
    t0 = datetime(2026, 11, 18, 10, tzinfo=UTC)
    events = [
        make_event(i, event_id=f"g-{i}", occurred_at=t0 + timedelta(minutes=5 * i), model=f"m{i % 2}",
                   deployment_id=(None, "d1", "d2")[i % 3], cost_nanos=10 + i)
        for i in range(30)
    ]  # fmt: skip
    await LedgerRepository(engine).write_batch(events)
    report = await spend_report(
        engine, start=t0, end=t0 + timedelta(hours=3), group_by=["model", "deployment"], granularity="hour"
    )
    want: dict[tuple[datetime, str | None, str | None], int] = defaultdict(int)
    for e in events:
        want[(period_for("hour", e.occurred_at, "UTC").start, e.model, e.deployment_id)] += e.cost_nanos
    got = {(r.period.start, *r.values): r.totals.cost_nanos for r in report.rows if r.period}
    assert got == dict(want)
