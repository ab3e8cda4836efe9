"""Local days, weeks and months of a zone off UTC midnight are read from whole UTC days,
plus or minus the piece between each period boundary and its nearest UTC midnight
(``reports.signed_plan``). The pieces must cancel exactly: every figure equals the raw
events on SQLite and PostgreSQL, east and west of UTC, across DST changes and in zones
with quarter-hour offsets, with ``top`` and a scope filter; a group whose only events lie
in a piece outside the range (inside a UTC day that is read) is no row. Keys too: their
adjustments count no request, and a row is shown when any figure is not zero, on either
plan (a key with only an adjustment in a day has a row; adjustments netting to zero make
none)."""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine
from test_reports_match_events import expected, observed

from db_helpers import clear_database
from spendgate.core.periods import Window, iter_periods, period_for
from spendgate.ledger import reports
from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.ledger.reports import Report, spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine

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
    plan = reports.signed_plan(boundaries, base)
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
    assert reports.signed_plan([10 * hour, 16 * hour, 40 * hour], hour) is None  # 6 h "day"


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


async def _adjust(engine: AsyncEngine, key_id: str, at: datetime, amount: int) -> None:
    """Record a key adjustment adding ``amount`` (negative: a reset) to its spend at ``at``."""
    before, after = (0, amount) if amount > 0 else (-amount, 0)
    change = KeyAdjustment(
        key_id=key_id, at=at, by="master_key", from_nanos=before, to_nanos=after,
        budget_duration=None, period_start=datetime(1970, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    async with engine.begin() as conn:
        assert await record_key_adjustment(conn, change) is not None


def _rows(report: Report) -> list[tuple[Any, ...]]:
    """(period start, values, cost, requests, other) per row."""
    other = report.columns.get("other", [False] * report.row_count)
    return [
        (r.period.start if r.period else None, r.values, r.totals.cost_nanos, r.totals.requests, o)
        for r, o in zip(report.rows, other, strict=True)
    ]


@pytest.mark.asyncio
async def test_keys_are_read_by_difference_and_show_a_row_when_a_figure_is_not_zero(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kolkata's 10 October is 9 Oct 18:30 – 10 Oct 18:30 UTC, its 11 October the next 24 h.
    day = datetime(2026, 10, 10, tzinfo=UTC)
    await LedgerRepository(engine).write_batch(
        [make_event(1, event_id="k", occurred_at=day + timedelta(hours=3), cost_nanos=500, api_key="ka")]
    )
    await _adjust(engine, "kb", day + timedelta(hours=20), 900)  # only an adjustment, in a piece
    await _adjust(engine, "kc", day + timedelta(hours=19), 400)  # two in a piece, netting to 0
    await _adjust(engine, "kc", day + timedelta(hours=23), -400)
    await _adjust(engine, "kd", day + timedelta(hours=4), 400)  # one in each day: 0 over both
    await _adjust(engine, "kd", day + timedelta(hours=21), -400)
    start = datetime(2026, 10, 9, 18, 30, tzinfo=UTC)
    d10, d11 = start, start + timedelta(days=1)
    signed = reports.signed_rows
    reads: list[object] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return signed(*args, **kwargs)

    monkeypatch.setattr(reports, "signed_rows", spy)

    async def report(granularity: str | None, top: int | None) -> Report:
        return await spend_report(
            engine, start=start, end=start + timedelta(days=2), group_by=["key"], granularity=granularity,
            tz="Asia/Kolkata", top=top,
        )  # fmt: skip

    by_day = await report("day", None)
    assert reads  # the difference plan: 1 daily row per key and the piece sums
    assert _rows(by_day) == [
        (d10, ("ka",), 500, 1, False),
        (d10, ("kd",), 400, 0, False),
        (d11, ("kb",), 900, 0, False),
        (d11, ("kd",), -400, 0, False),
    ]
    top_day = await report("day", 1)  # kb ranks first; kd, whose range total is 0, is a group
    assert _rows(top_day) == [
        (d10, (None,), 900, 1, True),
        (d11, ("kb",), 900, 0, False),
        (d11, (None,), -400, 0, True),
    ]
    assert top_day.other_groups == 2
    whole = await report(None, 1)  # over both days kc and kd are no row
    assert _rows(whole) == [(None, ("kb",), 900, 0, False), (None, (None,), 500, 1, True)]
    assert whole.other_groups == 1
    week = await report("week", None)  # both days lie in the week of 5 October
    assert [row[1:4] for row in _rows(week)] == [(("ka",), 500, 1), (("kb",), 900, 0)]
    # The plain plan (23 hours and 4 quarter hours a day) gives the same reports.
    monkeypatch.setattr(reports, "signed_plan", lambda *_: None)
    reads.clear()
    for granularity, top, want in [("day", None, by_day), ("day", 1, top_day), ("week", None, week)]:
        plain = await report(granularity, top)
        assert (_rows(plain), plain.other_groups) == (_rows(want), want.other_groups)
    assert not reads


@pytest.mark.asyncio
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
async def test_top_keys_rank_and_fold_the_keys_with_a_row(engine: AsyncEngine, tz: str) -> None:
    # With many values, the values are ranked from their sums over the range and the rest
    # row is a period's sum less the top values' part. A key with only adjustments is a
    # group when it has a row: kb (900 in a day) and kd (300 one day, -300 two days later)
    # are; kc (400 and -400 in one quarter hour: a rollup row of zeros) is not.
    day = datetime(2026, 10, 10, 6, tzinfo=UTC)
    await LedgerRepository(engine).write_batch(
        [
            make_event(
                i, event_id=f"k{i}", occurred_at=day + timedelta(hours=i), cost_nanos=5_000, api_key="ka"
            )
            for i in range(3)
        ]
    )
    await _adjust(engine, "kb", day + timedelta(days=1, minutes=9), 900)
    await _adjust(engine, "kc", day + timedelta(days=2), 400)
    await _adjust(engine, "kc", day + timedelta(days=2, minutes=4), -400)
    await _adjust(engine, "kd", day + timedelta(days=1, hours=1), 300)
    await _adjust(engine, "kd", day + timedelta(days=3, hours=1), -300)
    start, end = day - timedelta(days=1), day + timedelta(days=4)
    for granularity, groups in (("day", 2), (None, 1)):
        plain = await spend_report(
            engine, start=start, end=end, group_by=["key"], granularity=granularity, tz=tz
        )
        report = await spend_report(
            engine, start=start, end=end, group_by=["key"], granularity=granularity, tz=tz, top=1
        )
        assert "kc" not in {row.values[0] for row in plain.rows}
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
        assert report.other_groups == groups
        rest = sorted(v for (_, name), v in got.items() if name == "other")
        assert rest == ([[-300, 0], [1200, 0]] if granularity == "day" else [[900, 0]])
    hourly = await spend_report(
        engine, start=start, end=end, group_by=["key", "model"], granularity="hour", tz=tz
    )  # each hour one bucket: rows read in order, added up in Python
    assert sorted((row.values[0], row.totals.cost_nanos) for row in hourly.rows if row.values[0] != "ka") == [
        ("kb", 900),
        ("kd", -300),
        ("kd", 300),
    ]


ADJUSTMENTS = st.lists(
    st.tuples(
        st.sampled_from(["k1", "k2", "k3"]),
        st.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 4, 10)),
        st.sampled_from([-500, -300, 300, 500]),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evts=st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 4, 10)),
            st.sampled_from(["k1", "k2", None]),
            st.integers(min_value=0, max_value=10**6),
        ),
        max_size=25,
    ),
    adjustments=ADJUSTMENTS,
    granularity=st.sampled_from([None, "hour", "day", "week", "month"]),
    tz=st.sampled_from(["UTC", *ZONES]),
    top=st.sampled_from([None, None, 1, 2]),
    start=st.datetimes(min_value=datetime(2026, 3, 15), max_value=datetime(2026, 4, 5)),
    length=st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=30)),
)
def test_reports_by_key_with_adjustments_equal_the_events(
    database_url: str,
    evts: list[tuple[datetime, str | None, int]],
    adjustments: list[tuple[str, datetime, int]],
    granularity: str | None,
    tz: str,
    top: int | None,
    start: datetime,
    length: timedelta,
) -> None:
    # The events' sums per key, plus each adjustment's amount (no request), less the rows
    # whose every figure is zero; with top, the top keys by cost and the rest per period.
    events = [
        make_event(i, event_id=f"e{i}", occurred_at=at.replace(tzinfo=UTC), api_key=key, cost_nanos=cost)
        for i, (at, key, cost) in enumerate(evts)
    ]
    lo = start.replace(tzinfo=UTC)

    async def run() -> Report:
        engine = create_engine(database_url)
        try:
            await clear_database(engine)
            if events:
                await LedgerRepository(engine).write_batch(events)
            for n, (key, at, amount) in enumerate(adjustments):  # distinct instants, in order
                await _adjust(engine, key, at.replace(tzinfo=UTC) + timedelta(microseconds=n), amount)
            return await spend_report(
                engine, start=lo, end=lo + length, group_by=["key"], granularity=granularity, tz=tz, top=top
            )
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    want = expected(events, ["key"], granularity, tz, report.start, report.end)
    for n, (key, at, amount) in enumerate(adjustments):
        moment = at.replace(tzinfo=UTC) + timedelta(microseconds=n)
        if report.start <= moment < report.end:
            period = period_for(granularity, moment, tz).start if granularity else None
            want.setdefault((period, (key,)), [0, 0, 0, 0])[0] += amount
    want = {k: v for k, v in want.items() if any(v)}
    if top is None:
        assert observed(report) == want
        return
    totals: dict[str | None, int] = {}
    for (_, (key,)), v in want.items():
        totals[key] = totals.get(key, 0) + v[0]
    kept = sorted(totals, key=lambda k: (-totals[k], k or ""))[:top]
    folded: dict[Any, list[int]] = {}
    for (period, (key,)), v in want.items():
        row = folded.setdefault((period, key if key in kept else "other"), [0, 0, 0, 0])
        row[:] = [a + b for a, b in zip(row, v, strict=True)]
    got = {
        (r.period.start if r.period else None, "other" if o else r.values[0]): [
            r.totals.cost_nanos,
            r.totals.requests,
            r.totals.input_tokens,
            r.totals.output_tokens,
        ]
        for r, o in zip(report.rows, report.columns["other"], strict=True)
    }
    assert got == {k: v for k, v in folded.items() if any(v)}
    assert report.other_groups == len(totals) - len(kept)
