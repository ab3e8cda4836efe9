"""A report on the 15-minute grain (a zone whose day starts inside an hour: Asia/Kolkata,
Asia/Kathmandu, Australia/Lord_Howe across its half-hour DST change) reads the hours
without a period boundary from the hourly grain (the whole UTC days inside a week or a
month from the daily grain) and only the boundary hours from the 15-minute grain. Its
figures must still equal the raw events exactly, whatever the granularity, grouping and
scope filter, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine
from test_reports_match_events import expected, observed

from spendgate.ledger import reports
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository

T0 = datetime(2026, 3, 28, 3, 7, tzinfo=UTC)  # Lord Howe leaves DST (+11 → +10:30) on 5 April


@pytest.mark.asyncio
@pytest.mark.parametrize("tz", ["Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"])
async def test_mixed_grain_report_equals_the_events(engine: AsyncEngine, tz: str) -> None:
    # An event every 7 minutes for 12 days: every 15-minute bucket of a boundary hour and
    # every hour between holds events, so a row read from the wrong grain (or twice, or
    # not at all) changes a total.
    evts = [
        make_event(
            i,
            event_id=f"m-{i}",
            occurred_at=T0 + timedelta(minutes=7 * i),
            cost_nanos=10_000 + i * 37,
            team_id=("t1", "t2", None)[i % 3],
            model=("m1", "m2")[i % 2],
        )
        for i in range(12 * 24 * 60 // 7)
    ]
    await LedgerRepository(engine).write_batch(evts)
    start, end = T0 + timedelta(hours=5), T0 + timedelta(days=11, hours=2)
    cases: list[tuple[list[str], str | None, set[str] | None]] = [
        ([], "day", None),
        (["team", "model"], "day", None),
        (["team"], "day", {"t1", ""}),
        (["model"], "week", None),
        (["team"], "month", None),
        (["team", "model"], None, None),
    ]
    for group_by, granularity, ids in cases:
        report = await spend_report(
            engine, start=start, end=end, group_by=group_by, granularity=granularity, tz=tz, scope_ids=ids
        )
        assert report.grain == 900
        want = expected(evts, group_by, granularity, tz, report.start, report.end)
        if ids is not None:
            want = {k: v for k, v in want.items() if (k[1][0] or "") in ids}
        got = observed(report)
        assert got == want, (group_by, granularity, ids)


def _covers_once(plan: list[tuple[int, list[int]]], boundaries: list[int]) -> None:
    """The plan's buckets tile the range exactly, and none holds a boundary inside."""
    spans = sorted((t, t + g) for g, buckets in plan for t in buckets)
    assert spans[0][0] == boundaries[0] and spans[-1][1] == boundaries[-1]
    assert all(a[1] == b[0] for a, b in pairwise(spans))
    assert not [s for s in spans for b in boundaries if s[0] < b < s[1]]


def test_which_buckets_are_read_at_which_grain() -> None:
    hour, day = 3600, 86400
    kolkata = [d * day - 5 * hour - 1800 for d in range(1, 5)]  # Kolkata midnights
    plan = reports.grain_plan(kolkata, 900)
    _covers_once(plan, kolkata)
    grains = dict(plan)
    assert sorted(grains) == [900, 3600]  # no whole UTC day inside a Kolkata day
    assert len(grains[900]) == 2 + 4 + 4 + 2  # half an hour at each end, the two midnights inside
    utc_days = [0, day, 2 * day]
    assert reports.grain_plan(utc_days, day) == [(day, utc_days[:-1])]  # one grain: the days
    berlin_months = [31 * day - hour, 59 * day - hour, 90 * day - 2 * hour]  # +1, +1, +2 (made up)
    plan = reports.grain_plan(berlin_months, hour)
    _covers_once(plan, berlin_months)
    assert dict(plan)[day] == [t for t in range(31 * day, 89 * day, day) if t != 58 * day]
    assert len(dict(plan)[hour]) == 1 + 24 + 22  # the hours of the three UTC days at the edges
    kolkata_hours = [h * hour + 1800 for h in range(10)]  # every hour holds a boundary
    assert reports.grain_plan(kolkata_hours, 900) == [(900, list(range(1800, 9 * hour + 1800, 900)))]
    odd = [10 * hour + 900, 2 * day + 3 * hour]  # a range, no periods
    plan = reports.grain_plan(odd, 900)
    _covers_once(plan, odd)
    assert [g for g, _ in plan] == [day, hour, 900]
