"""``spend_report(top=n)`` by difference (:func:`~spendgate.ledger.report_top.top_by_difference`:
local days, weeks and months of a zone off UTC midnight, by key, user, team, organization or
customer) gives exactly what the older path gives (:func:`~spendgate.ledger.report_top.top_groups`:
every (period, value) group summed, ranked and folded), on random ledgers that hold what the
difference has to get right: keys whose only rows are adjustments, adjustments netting to
zero (within a period or across two), events outside the range but inside the UTC days or
the pieces read, ties, zones with DST changes in the range and with offsets of 30 and 45
minutes or more than 12 hours, and ranges of any length starting and ending anywhere."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import clear_database
from spendgate.core.usage.model import Usage
from spendgate.ledger import reports
from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.reports import Report, Totals, spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine

# DST changes between 2026-03-20 and 2026-04-20: Europe/Berlin (03-29), Australia/Lord_Howe
# (04-05, half an hour), America/Santiago and Pacific/Chatham (04-05); the rest are fixed
# offsets off the hour or far from UTC (Kiritimati +14, Pago Pago -11).
ZONES = [
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]
DIMENSIONS = ["key", "user", "team", "org", "customer"]
SOME_IDS = ["", "k1", "ka", "u1", "t2", "o1", "c3"]
LO = datetime(2026, 3, 24)
HI = datetime(2026, 4, 12)


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[datetime, datetime, list[SpendEvent], list[tuple[str, datetime, int]]]:
    """A range, events around its ends and inside it, and key adjustments."""
    start = draw(st.datetimes(min_value=LO, max_value=HI)).replace(tzinfo=UTC)
    length = draw(st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=15)))
    end = start + length
    anchors = [start, end, start + length / 2]
    moment = st.builds(
        lambda anchor, offset: anchor + offset,
        st.sampled_from(anchors),
        st.timedeltas(min_value=timedelta(hours=-40), max_value=timedelta(hours=40)),
    )
    events = [
        SpendEvent(
            event_id=f"e{i}",
            occurred_at=draw(moment),
            cost_nanos=draw(st.sampled_from([0, 1, 5, 1_000, 10**9 + 7])),  # ties on purpose
            usage=Usage(input_tokens=draw(st.integers(0, 50)), output_tokens=draw(st.integers(0, 5))),
            status=draw(st.sampled_from([EventStatus.SUCCESS, EventStatus.ERROR])),
            api_key=draw(st.sampled_from(["k1", "k2", "k3", "k4", None])),
            user_id=draw(st.sampled_from(["u1", "u2", None])),
            team_id=draw(st.sampled_from(["t1", "t2", "t3", None])),
            organization_id=draw(st.sampled_from(["o1", "o2", None])),
            end_user=draw(st.sampled_from(["c1", "c2", "c3", None])),
            model=draw(st.sampled_from(["m1", "m2", "m3"])),
            provider=draw(st.sampled_from(["p1", "p2"])),
            tags=tuple(draw(st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True))),
        )
        for i in range(draw(st.integers(0, 30)))
    ]
    # Adjustments: of keys with events and of keys without any ("ka", "kb"); some are
    # undone by the next one (at the same instant or hours later: across periods).
    adjustments: list[tuple[str, datetime, int]] = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(["k1", "k2", "ka", "kb"]))
        at = draw(moment)
        amount = draw(st.sampled_from([-(10**9 + 7), -5, 5, 1_000, 3 * 10**9]))
        adjustments.append((key, at, amount))
        if draw(st.booleans()):
            later = draw(st.sampled_from([timedelta(0), timedelta(hours=3), timedelta(hours=30)]))
            adjustments.append((key, at + later, -amount))
    return start, end, events, adjustments


def _snapshot(report: Report) -> dict[str, Any]:
    return {
        "columns": report.columns,
        "other_groups": report.other_groups,
        "totals": report.totals,
        "range": (report.start, report.end, report.grain),
    }


def _rows(report: Report) -> list[tuple[Any, ...]]:
    other = report.columns.get("other") or [False] * report.row_count
    return [(r.period, r.values[0], r.totals, o) for r, o in zip(report.rows, other, strict=True)]


def _fold(plain: Report, top: int) -> tuple[list[tuple[Any, ...]], int]:
    """What ``top`` means, from the report without it: the values ranked by their cost over
    the range (ties: byte order, none first), the top ones' rows kept, every other value's
    rows summed per period into one row, shown when a figure is not zero."""
    cost: dict[str | None, int] = {}
    for row in plain.rows:
        cost[row.values[0]] = cost.get(row.values[0], 0) + row.totals.cost_nanos
    ranked = sorted(cost, key=lambda v: (-cost[v], (v or "").encode()))
    kept = set(ranked[:top])
    out: list[tuple[Any, ...]] = []
    for period in dict.fromkeys(r.period for r in plain.rows):
        rows = [r for r in plain.rows if r.period == period]
        out += sorted(
            ((period, r.values[0], r.totals, False) for r in rows if r.values[0] in kept),
            key=lambda t: (t[1] or "").encode(),
        )
        rest = Totals()
        for r in rows:
            if r.values[0] not in kept:
                rest.add(r.totals)
        if rest != Totals():
            out.append((period, None, rest, True))
    return out, max(0, len(ranked) - top)


async def _check(engine: AsyncEngine, by_difference: bool, top: int, **args: Any) -> None:
    """The report with ``top`` is :func:`_fold` of the one without; by difference (the path
    taken when ``by_difference``) it is also, column for column, the older path's report."""
    used: list[int] = []
    real = reports.top_by_difference

    def spy(*a: Any) -> Any:
        used.append(1)
        return real(*a)

    with mock.patch.object(reports, "top_by_difference", spy):
        new = await spend_report(engine, top=top, **args)
    assert bool(used) == by_difference, args
    plain = await spend_report(engine, **args)
    want, folded = _fold(plain, top)
    assert (_rows(new), new.other_groups) == (want, folded), (top, args)
    assert new.totals == plain.totals
    if by_difference:  # the older path: every (period, value) group summed, ranked, folded
        with mock.patch.object(reports, "_every_value", lambda _dim: None):
            old = await spend_report(engine, top=top, **args)
        assert _snapshot(new) == _snapshot(old), (top, args)


async def _write(
    engine: AsyncEngine, events: list[SpendEvent], adjustments: list[tuple[str, datetime, int]]
) -> None:
    await clear_database(engine)
    if events:
        await LedgerRepository(engine).write_batch(events)
    for key, at, amount in adjustments:
        async with engine.begin() as conn:
            await record_key_adjustment(
                conn,
                KeyAdjustment(
                    key_id=key, at=at, by="test", from_nanos=0, to_nanos=amount,
                    budget_duration=None, period_start=at,
                ),
            )  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ledger=ledgers(),
    tz=st.sampled_from(ZONES),
    granularity=st.sampled_from(["day", "week", "month"]),
    tops=st.lists(st.integers(1, 6), min_size=1, max_size=2, unique=True),
)
def test_top_by_difference_equals_every_group_summed(
    database_url: str,
    ledger: tuple[datetime, datetime, list[SpendEvent], list[tuple[str, datetime, int]]],
    tz: str,
    granularity: str,
    tops: list[int],
) -> None:
    start, end, events, adjustments = ledger

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            await _write(engine, events, adjustments)
            for dim in DIMENSIONS:
                for top in tops:
                    await _check(
                        engine,
                        True,
                        top,
                        start=start,
                        end=end,
                        group_by=[dim],
                        granularity=granularity,
                        tz=tz,
                    )
                # Narrowed to some ids: every group summed (top_groups), over the same rows.
                await _check(
                    engine,
                    False,
                    tops[0],
                    start=start,
                    end=end,
                    group_by=[dim],
                    granularity=granularity,
                    tz=tz,
                    scope_ids=SOME_IDS,
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ledger=ledgers(),
    tz=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
    granularity=st.sampled_from([None, "hour", "day"]),
    top=st.integers(1, 4),
)
def test_top_elsewhere_is_the_fold_of_the_report(
    database_url: str,
    ledger: tuple[datetime, datetime, list[SpendEvent], list[tuple[str, datetime, int]]],
    tz: str,
    granularity: str | None,
    top: int,
) -> None:
    """The other paths (:func:`~spendgate.ledger.report_top.top_groups`, of many values or
    few; over the rows of every model together, ``key_total`` and ``customer_total``) on
    the same ledgers."""
    start, end, events, adjustments = ledger
    off_midnight = tz != "UTC" and granularity == "day"

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            await _write(engine, events, adjustments)
            for dim in [*DIMENSIONS, "tag", "model"]:
                by_difference = off_midnight and dim in DIMENSIONS
                await _check(
                    engine,
                    by_difference,
                    top,
                    start=start,
                    end=end,
                    group_by=[dim],
                    granularity=granularity,
                    tz=tz,
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


class _Captured(Exception):
    pass


@pytest.mark.postgres
@pytest.mark.parametrize("tz", ["Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "Asia/Kathmandu"])
@pytest.mark.parametrize("granularity", ["day", "week", "month"])
@pytest.mark.parametrize("dim", ["key", "customer", "team"])
async def test_one_statement_never_binds_one_name_twice(
    postgres_url: str, tz: str, granularity: str, dim: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reads by difference in one statement (``signed_rows`` under several names) bind
    their bucket lists as PostgreSQL array parameters: no two of them share a name (one
    would silently take the other's value). Over a year and a half of DST changes, so the
    plans have many parts. Compiled only: the statement is not run."""
    captured: list[Any] = []

    async def capture(conn: Any, stmt: Any) -> Any:
        captured.append(stmt)
        raise _Captured

    monkeypatch.setattr(reports, "_fetch_columns", capture)
    engine = create_engine(postgres_url)
    try:
        for start, days in (
            (datetime(2025, 12, 3, 7, tzinfo=UTC), 500),
            (datetime(2026, 3, 25, tzinfo=UTC), 20),
        ):
            with pytest.raises(_Captured):
                await spend_report(
                    engine,
                    start=start,
                    end=start + timedelta(days=days),
                    group_by=[dim],
                    granularity=granularity,
                    tz=tz,
                    top=3,
                )
            compiled = captured.pop().compile(dialect=engine.dialect)
            values: dict[str, set[str]] = defaultdict(set)
            for bind, name in compiled.bind_names.items():
                values[name].add(repr(bind.value))
            assert {n: v for n, v in values.items() if len(v) > 1} == {}
            assert any(name.startswith("buckets_") or name.startswith("skipped_") for name in values)
    finally:
        await engine.dispose()
