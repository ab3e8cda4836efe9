"""``spend_report(scope_ids=...)`` and the activity reads that use it. The report narrowed,
in SQL, to some ids of its scope dimension equals the same report computed from the raw
events of those ids only (random events, several zones, both databases); ``''`` selects
the events without one; ids are bound values, never SQL; the filter needs a scope
dimension; ``daily_activity`` narrowed by ids answers exactly as with its predicates alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import make_event
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from test_reports_match_events import ZONES, events, expected, observed

from db_helpers import clear_database
from spendgate.ledger.activity_reads import daily_activity, key_activity
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import SpendEventRow

IDS = {
    "key": ["k1", "k2", ""],
    "user": ["u1", ""],
    "team": ["t1", "t2", "t3", ""],
    "org": ["o1", ""],
    "customer": ["c1", "c2", ""],
    "tag": ["a", "b", "c", ""],
}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evts=events(),
    scope=st.sampled_from(sorted(IDS)),
    data=st.data(),
    columns=st.lists(st.sampled_from(["model", "provider"]), unique=True, max_size=2),
    granularity=st.sampled_from([None, "hour", "day", "month"]),
    tz=st.sampled_from(ZONES),
    start=st.datetimes(min_value=datetime(2026, 3, 15), max_value=datetime(2026, 4, 5)),
    length=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=30)),
)
def test_narrowed_report_equals_the_events_of_those_ids(
    database_url: str,
    evts: list[SpendEvent],
    scope: str,
    data: st.DataObject,
    columns: list[str],
    granularity: str | None,
    tz: str,
    start: datetime,
    length: timedelta,
) -> None:
    # Ids that exist and one that does not; '' is the events without one.
    wanted = data.draw(st.sets(st.sampled_from([*IDS[scope], "nobody"]), max_size=3))
    group_by = [scope, *columns]
    lo = start.replace(tzinfo=UTC)

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            await clear_database(engine)
            if evts:
                await LedgerRepository(engine).write_batch(evts)
            narrowed = await spend_report(
                engine,
                start=lo,
                end=lo + length,
                group_by=group_by,
                granularity=granularity,
                tz=tz,
                scope_ids=wanted,
            )
            whole = await spend_report(
                engine, start=lo, end=lo + length, group_by=group_by, granularity=granularity, tz=tz
            )
        finally:
            await engine.dispose()
        keep = {(w or None) for w in wanted}
        want = {
            k: v
            for k, v in expected(evts, group_by, granularity, tz, narrowed.start, narrowed.end).items()
            if k[1][0] in keep
        }
        assert observed(narrowed) == want
        # The same rows as the whole report's rows of those ids, and totals that are their sum.
        assert observed(narrowed) == {k: v for k, v in observed(whole).items() if k[1][0] in keep}
        assert narrowed.totals.cost_nanos == sum(v[0] for v in want.values())
        assert narrowed.totals.requests == sum(v[1] for v in want.values())
        assert (narrowed.start, narrowed.end, narrowed.grain) == (whole.start, whole.end, whole.grain)

    asyncio.run(run())


T0 = datetime(2026, 6, 1, tzinfo=UTC)


async def _fill(engine: AsyncEngine) -> list[SpendEvent]:
    evts = [
        make_event(
            i,
            event_id=f"s-{i}",
            occurred_at=T0 + timedelta(minutes=7 * i),
            cost_nanos=1_000 + i,
            team_id=("t1", "t2", None, "x' OR '1'='1")[i % 4],
        )
        for i in range(400)
    ]
    await LedgerRepository(engine).write_batch(evts)
    return evts


@pytest.mark.asyncio
async def test_ids_are_values_not_sql(engine: AsyncEngine) -> None:
    """A hostile id matches only itself; a long list (more ids than a statement has
    placeholders to spare on SQLite's old limit) works and selects the same rows."""
    evts = await _fill(engine)
    hostile = "x' OR '1'='1"
    end = T0 + timedelta(days=3)
    report = await spend_report(engine, start=T0, end=end, group_by=["team"], scope_ids=[hostile])
    assert report.columns["team"] == [hostile]
    assert report.totals.cost_nanos == sum(e.cost_nanos for e in evts if e.team_id == hostile)
    many = [f"team-{i}" for i in range(5_000)] + ["t1"]
    report = await spend_report(
        engine, start=T0, end=end, group_by=["team"], granularity="day", scope_ids=many
    )
    assert set(report.columns["team"]) == {"t1"}
    assert report.totals.cost_nanos == sum(e.cost_nanos for e in evts if e.team_id == "t1")
    async with engine.connect() as conn:  # the events really hold other teams' spend
        assert (
            await conn.execute(select(func.count(func.distinct(SpendEventRow.team_id))))
        ).scalar_one() == 3


@pytest.mark.asyncio
async def test_empty_ids_and_none(engine: AsyncEngine) -> None:
    evts = await _fill(engine)
    end = T0 + timedelta(days=3)
    empty = await spend_report(engine, start=T0, end=end, group_by=["team", "model"], scope_ids=[])
    assert empty.row_count == 0 and empty.totals.requests == 0
    none = await spend_report(
        engine, start=T0, end=end, group_by=["team"], granularity="hour", scope_ids=[""]
    )
    assert set(none.columns["team"]) == {None}
    assert none.totals.requests == sum(1 for e in evts if e.team_id is None)


@pytest.mark.asyncio
async def test_scope_ids_need_a_scope_dimension(engine: AsyncEngine) -> None:
    for group_by in ([], ["model"], ["model", "provider"]):
        with pytest.raises(ValueError, match="scope_ids"):
            await spend_report(
                engine, start=T0, end=T0 + timedelta(days=1), group_by=group_by, scope_ids=["t1"]
            )


@pytest.mark.asyncio
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
async def test_daily_activity_narrowed_in_sql_is_the_same_answer(engine: AsyncEngine, tz: str) -> None:
    """``daily_activity(entity_ids=, key_ids=)`` reads only those ids' rollups and gives the
    same days as the predicates alone, each day's figures equal to the events' sums."""
    evts = [
        make_event(
            i,
            event_id=f"a-{i}",
            occurred_at=T0 + timedelta(minutes=13 * i),
            cost_nanos=7_000 + i,
            team_id=("t1", "t2", None)[i % 3],
            api_key=("k1", "k2", "k3", "k4")[i % 4],
        )
        for i in range(600)
    ]
    await LedgerRepository(engine).write_batch(evts)
    first, last = T0.date(), (T0 + timedelta(days=5)).date()
    team_keys = {"k1", "k3"}
    plain = await daily_activity(
        engine, scope="team", first=first, last=last, tz=tz,
        entities=lambda e: e == "t1", keys=lambda k: k in team_keys,
    )  # fmt: skip
    narrowed = await daily_activity(
        engine, scope="team", first=first, last=last, tz=tz,
        entities=lambda e: e == "t1", keys=lambda k: k in team_keys,
        entity_ids={"t1"}, key_ids=team_keys,
    )  # fmt: skip
    assert narrowed == plain and len(narrowed) >= 4
    zone = ZoneInfo(tz)
    for day in narrowed:
        on_day = [e for e in evts if e.occurred_at.astimezone(zone).date() == day.day]
        assert day.metrics.cost_nanos == sum(e.cost_nanos for e in on_day if e.team_id == "t1")
        assert {k: m.cost_nanos for k, m in day.keys.items()} == {
            k: sum(e.cost_nanos for e in on_day if e.api_key == k) for k in team_keys
        }
    # None in entity_ids is the events without a team; an empty key_ids lists no key.
    unassigned = await daily_activity(
        engine, scope="team", first=first, last=last, tz=tz,
        entities=lambda e: e is None, keys=lambda k: True, entity_ids={None}, key_ids=set(),
    )  # fmt: skip
    assert sum(d.metrics.cost_nanos for d in unassigned) == sum(
        e.cost_nanos for e in evts if e.team_id is None
    )
    assert all(not d.keys for d in unassigned)
    one = await key_activity(engine, key_id="k2", listed_under=["t2"], first=first, last=last, tz=tz)
    assert sum(d.metrics.cost_nanos for d in one) == sum(e.cost_nanos for e in evts if e.api_key == "k2")


@pytest.mark.asyncio
async def test_the_reports_planner_settings_stay_with_its_statement(postgres_url: str) -> None:
    """On PostgreSQL the report runs with its own work_mem, JIT and sort settings; the
    caller's transaction gets its own values back (a handler's session goes on to run
    other statements in the same transaction)."""
    engine = create_engine(postgres_url)
    try:
        await clear_database(engine)
        await _fill(engine)
        show = text(
            "SELECT current_setting('work_mem'), current_setting('enable_sort'), current_setting('jit')"
        )
        async with engine.connect() as conn, conn.begin():
            await conn.execute(text("SET LOCAL work_mem = '5MB'"))
            before = tuple((await conn.execute(show)).one())
            report = await spend_report(
                conn, start=T0, end=T0 + timedelta(days=3), group_by=["team", "model"], granularity="day"
            )
            assert report.row_count > 0
            assert tuple((await conn.execute(show)).one()) == before
            assert before[:2] == ("5MB", "on")
    finally:
        await engine.dispose()
