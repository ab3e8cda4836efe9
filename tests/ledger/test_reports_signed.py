"""Local days, weeks and months of a zone off UTC midnight are read from whole UTC days,
plus or minus the piece between each period boundary and its nearest UTC midnight
(``reports._signed_plan``). The pieces must cancel exactly: every figure equals the raw
events on SQLite and PostgreSQL, east and west of UTC, across DST changes and in zones
with quarter-hour offsets, with ``top`` and a scope filter; a group whose only events lie
in a piece outside the range (inside a UTC day that is read) is no row; keys (whose
adjustment rows count no request) keep the plain plan."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine
from test_reports_match_events import expected, observed

from spendgate.core.periods import Window, iter_periods, period_for
from spendgate.ledger import reports
from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository

T0 = datetime(2026, 10, 18, 5, 3, tzinfo=UTC)  # Berlin leaves DST on 25 October, Los Angeles on 1 November
ZONES = ["Asia/Kolkata", "Europe/Berlin", "America/Los_Angeles", "Pacific/Chatham", "Asia/Kathmandu"]


def _boundaries(granularity: str, tz: str, start: datetime, end: datetime) -> list[int]:
    window = Window(granularity)
    lo, hi = period_for(window, start, tz).start, period_for(window, end, tz).end
    return [reports._epoch(p.start) for p in iter_periods(window, lo, hi, tz)] + [reports._epoch(hi)]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("granularity", ["day", "week", "month"])
def test_the_signed_pieces_add_up_to_each_period(tz: str, granularity: str) -> None:
    # Net count of every 15-minute bucket in every period: 1 inside it, 0 elsewhere.
    start = datetime(2026, 9, 20, tzinfo=UTC)
    boundaries = _boundaries(granularity, tz, start, start + timedelta(days=70))
    base = max(g for g in reports.GRAINS if all(b % g == 0 for b in boundaries))
    plan = reports._signed_plan(boundaries, base)
    assert plan is not None
    net: dict[tuple[int, int], int] = {}

    def add(at: int, weight: int, grain: int, counted_at: int) -> None:
        k = bisect_right(boundaries, counted_at) - 1
        if 0 <= k < len(boundaries) - 1:  # the parts counting outside the range are not read
            for q in range(at, at + grain, 900):
                net[q, k] = net.get((q, k), 0) + weight

    for (grain, shift, both), buckets in plan.items():
        for t in buckets:
            if both:
                add(t, 1, grain, t)
                add(t, -1, grain, t + shift)
            else:
                add(t, 1, grain, t + shift)
    want = {(q, k): 1 for k, (a, b) in enumerate(pairwise(boundaries)) for q in range(a, b, 900)}
    assert {key: n for key, n in net.items() if n} == want
    assert len(plan) <= 8  # a handful of selects (a piece's grains, two offsets), not one per day


def test_a_period_shorter_than_its_pieces_keeps_the_plain_plan() -> None:
    hour = 3600
    assert reports._signed_plan([10 * hour, 16 * hour, 40 * hour], hour) is None  # 6 h "day"


@pytest.mark.asyncio
@pytest.mark.parametrize("tz", ZONES)
async def test_signed_reports_equal_the_events(engine: AsyncEngine, tz: str) -> None:
    # An event every 13 minutes for 20 days: every hour and quarter hour of every piece
    # holds events, so a piece added or subtracted on the wrong side changes a total.
    evts = [
        make_event(
            i,
            event_id=f"s-{i}",
            occurred_at=T0 + timedelta(minutes=13 * i),
            cost_nanos=10_000 + i * 37,
            team_id=("t1", "t2", None)[i % 3],
            end_user=f"c{i % 7}",
            model=("m1", "m2")[i % 2],
        )
        for i in range(20 * 24 * 60 // 13)
    ]
    await LedgerRepository(engine).write_batch(evts)
    start, end = T0 + timedelta(days=1, hours=5), T0 + timedelta(days=18, hours=2)
    cases: list[tuple[list[str], str, set[str] | None]] = [
        ([], "day", None),
        (["team", "model"], "day", None),
        (["team"], "day", {"t1", ""}),
        (["customer"], "day", None),
        (["model"], "week", None),
        (["team"], "month", None),
    ]
    for group_by, granularity, ids in cases:
        report = await spend_report(
            engine, start=start, end=end, group_by=group_by, granularity=granularity, tz=tz, scope_ids=ids
        )
        want = expected(evts, group_by, granularity, tz, report.start, report.end)
        if ids is not None:
            want = {k: v for k, v in want.items() if (k[1][0] or "") in ids}
        assert observed(report) == want, (group_by, granularity, ids)
        assert [report.totals.cost_nanos, report.totals.requests] == [
            sum(v[0] for v in want.values()),
            sum(v[1] for v in want.values()),
        ]
    for dim in ("team", "customer"):  # top: a few values (folded from groups) and many (two passes)
        report = await spend_report(
            engine, start=start, end=end, group_by=[dim], granularity="day", tz=tz, top=2
        )
        want = expected(evts, [dim], "day", tz, report.start, report.end)
        totals: dict[str | None, int] = {}
        for (_, (value,)), v in want.items():
            totals[value] = totals.get(value, 0) + v[0]
        kept = sorted(totals, key=lambda v: (-totals[v], v or ""))[:2]
        got: dict[tuple[datetime, str | None], int] = {}
        for row, other in zip(report.rows, report.columns["other"], strict=True):
            assert row.period is not None
            got[row.period.start, "other" if other else row.values[0]] = row.totals.cost_nanos
        rest: dict[tuple[datetime, str | None], int] = {}
        for (period, (value,)), v in want.items():
            key = (period, value if value in kept else "other")
            rest[key] = rest.get(key, 0) + v[0]
        assert got == rest, dim
        assert report.other_groups == len(totals) - 2


@pytest.mark.asyncio
async def test_a_group_only_in_a_piece_outside_the_range_is_no_row(engine: AsyncEngine) -> None:
    # Kolkata's 10 October is 9 Oct 18:30 – 10 Oct 18:30 UTC: it reads the UTC day of
    # 10 October and subtracts its piece after 18:30, where t3's only event is.
    day = datetime(2026, 10, 10, tzinfo=UTC)
    evts = [
        make_event(1, event_id="in", occurred_at=day + timedelta(hours=3), cost_nanos=500, team_id="t1"),
        make_event(2, event_id="out", occurred_at=day + timedelta(hours=20), cost_nanos=700, team_id="t3"),
    ]
    await LedgerRepository(engine).write_batch(evts)
    start = datetime(2026, 10, 9, 18, 30, tzinfo=UTC)
    for top in (None, 5):
        report = await spend_report(
            engine, start=start, end=start + timedelta(days=1), group_by=["team"], granularity="day",
            tz="Asia/Kolkata", top=top,
        )  # fmt: skip
        assert [(r.values, r.totals.cost_nanos, r.totals.requests) for r in report.rows] == [
            (("t1",), 500, 1)
        ]
        assert report.other_groups == 0


@pytest.mark.asyncio
async def test_keys_with_an_adjustment_only_day_keep_their_row(engine: AsyncEngine) -> None:
    # A key's adjustment row counts no request, so "no request" cannot tell a group that
    # cancelled out from one that only has adjustments: a report by key keeps the plain plan.
    day = datetime(2026, 10, 10, tzinfo=UTC)
    await LedgerRepository(engine).write_batch(
        [make_event(1, event_id="k", occurred_at=day + timedelta(hours=3), cost_nanos=500, api_key="ka")]
    )
    change = KeyAdjustment(
        key_id="kb", at=day + timedelta(hours=20), by="master_key", from_nanos=0, to_nanos=900,
        budget_duration=None, period_start=datetime(1970, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    async with engine.begin() as conn:
        assert await record_key_adjustment(conn, change) is not None
    start = datetime(2026, 10, 9, 18, 30, tzinfo=UTC)  # Kolkata's 10 and 11 October
    for top in (None, 5):
        report = await spend_report(
            engine, start=start, end=start + timedelta(days=2), group_by=["key"], granularity="day",
            tz="Asia/Kolkata", top=top,
        )  # fmt: skip
        got = [
            (r.period.start if r.period else None, r.values, r.totals.cost_nanos, r.totals.requests)
            for r in report.rows
        ]
        assert got == [(start, ("ka",), 500, 1), (start + timedelta(days=1), ("kb",), 900, 0)]


@pytest.mark.asyncio
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
async def test_top_keys_rest_rows_count_adjustment_rows(engine: AsyncEngine, tz: str) -> None:
    # With many values the rest row of a period is its sum less the top values' part, and
    # it exists when rows beyond the top values' are left: an adjustment-only key (no
    # request), even two adjustments of one day summing to 0, still makes a rest row.
    day = datetime(2026, 10, 10, 6, tzinfo=UTC)
    await LedgerRepository(engine).write_batch(
        [
            make_event(
                i, event_id=f"k{i}", occurred_at=day + timedelta(hours=i), cost_nanos=5_000, api_key="ka"
            )
            for i in range(3)
        ]
    )
    changes = [("kb", 1, 0, 900), ("kc", 2, 0, 400), ("kc", 2, 400, 0)]  # key, day, from, to
    for key_id, offset, before, after in changes:
        change = KeyAdjustment(
            key_id=key_id, at=day + timedelta(days=offset, minutes=before // 100), by="master_key",
            from_nanos=before, to_nanos=after, budget_duration=None,
            period_start=datetime(1970, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        async with engine.begin() as conn:
            assert await record_key_adjustment(conn, change) is not None
    start, end = day - timedelta(days=1), day + timedelta(days=4)
    for granularity in ("day", None):
        plain = await spend_report(
            engine, start=start, end=end, group_by=["key"], granularity=granularity, tz=tz
        )
        report = await spend_report(
            engine, start=start, end=end, group_by=["key"], granularity=granularity, tz=tz, top=1
        )
        want: dict[tuple[datetime | None, str | None], list[int]] = {}
        for row in plain.rows:
            period = row.period.start if row.period else None
            key = (period, row.values[0] if row.values[0] == "ka" else "other")
            figures = [row.totals.cost_nanos, row.totals.requests]
            want[key] = [a + b for a, b in zip(want.get(key, [0, 0]), figures, strict=True)]
        got = {
            (row.period.start if row.period else None, "other" if other else row.values[0]): [
                row.totals.cost_nanos,
                row.totals.requests,
            ]
            for row, other in zip(report.rows, report.columns["other"], strict=True)
        }
        assert got == want, granularity
        assert report.other_groups == 2
        if granularity == "day":
            assert sorted(v for (_, name), v in got.items() if name == "other") == [[0, 0], [900, 0]]
