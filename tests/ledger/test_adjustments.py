"""Spend adjustments in the ledger (an administrator set a key's spend): one append-only
event that counts in its key's spend only, never as a request, never in the team's, the
user's or the proxy's spend, and in the key's main window only (its other windows, its
lifetime spend and its model budgets count real spend, as read and as seeded) — on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import T0, make_event, rollup_totals
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.periods import parse_window, period_for
from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit
from spendgate.ledger.adjustments import (
    ADJUSTMENT_ROLLUP,
    KeyAdjustment,
    adjustment_time,
    record_key_adjustment,
)
from spendgate.ledger.rebuild import (
    ScopeWindow,
    current_period_spend,
    current_period_spend_many,
    period_spend,
)
from spendgate.ledger.repository import LedgerRepository
from spendgate.ledger.scope_spend import SpendQuery, range_spend, scope_spend
from spendgate.stores.database.models import SpendEventRow

pytestmark = pytest.mark.asyncio
KEY = "hash-a"
USD = 1_000_000_000


def _adjustment(at: datetime, from_nanos: int, to_nanos: int) -> KeyAdjustment:
    return KeyAdjustment(
        key_id=KEY,
        at=at,
        by="master_key",
        from_nanos=from_nanos,
        to_nanos=to_nanos,
        budget_duration=None,
        period_start=datetime(1970, 1, 1, tzinfo=UTC),
    )


async def _lifetime(engine: AsyncEngine, scope_type: str, scope_id: str, now: datetime) -> int:
    query = SpendQuery(scope_type, scope_id, parse_window("lifetime"))
    async with engine.connect() as conn:
        return (await scope_spend(conn, [query], now=now))[query].spend_nanos


async def test_an_adjustment_counts_for_its_key_only(engine: AsyncEngine) -> None:
    events = [make_event(n) for n in range(5)]
    await LedgerRepository(engine).write_batch(events)
    spent = sum(e.cost_nanos for e in events)
    before = {t: await rollup_totals(engine, 900, t) for t in ("global", "team", "user", "tag", "key")}
    at = T0 + timedelta(minutes=1, microseconds=250)
    async with engine.begin() as conn:
        event_id = await record_key_adjustment(conn, _adjustment(at, spent, 0))
    assert event_id is not None
    now = T0 + timedelta(minutes=30)

    assert await _lifetime(engine, "key", KEY, now) == 0
    for scope_type, scope_id in (("team", "team-a"), ("user", "user-a"), ("global", "")):
        assert await _lifetime(engine, scope_type, scope_id, now) == spent
    # Rollups: the key's cost moved, no request or token was added anywhere.
    assert await rollup_totals(engine, 900, "key") == (before["key"][0], 0)
    for t in ("global", "team", "user", "tag"):
        assert await rollup_totals(engine, 900, t) == before[t]
    # Raw-event reads: a rolling window of every event leaves it out, of the key counts it.
    assert await current_period_spend(engine, "global", "", "rolling:1h", now=now) == spent
    assert await current_period_spend(engine, "key", KEY, "rolling:1h", now=now) == 0
    assert await current_period_spend(engine, "team", "team-a", "rolling:1h", now=now) == spent
    # The event itself: append-only, its audit record, nothing but its key.
    async with engine.connect() as conn:
        found = await conn.execute(select(SpendEventRow.__table__).where(SpendEventRow.event_id == event_id))
        row = found.one()
    assert (row.status, row.cost_nanos, row.api_key, row.team_id, row.user_id, row.model) == (
        "adjustment",
        -spent,
        KEY,
        None,
        None,
        None,
    )
    assert row.adjustment is not None
    assert (row.adjustment["by"], row.adjustment["from_nanos"], row.adjustment["to_nanos"]) == (
        "master_key",
        spent,
        0,
    )


async def test_the_same_value_writes_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await record_key_adjustment(conn, _adjustment(T0, 500, 500)) is None
    assert await rollup_totals(engine, 900, "key") == (0, 0)


async def test_range_spend_counts_to_the_instant(engine: AsyncEngine) -> None:
    """Exact to the microsecond: the whole buckets from the rollups, the edges from events."""
    start = datetime(2026, 11, 18, tzinfo=UTC)
    events = [
        make_event(1, occurred_at=T0 + timedelta(microseconds=100), cost_nanos=3, cost_items={}),
        make_event(2, occurred_at=T0 + timedelta(microseconds=300), cost_nanos=5, cost_items={}),
        make_event(3, occurred_at=T0 - timedelta(hours=3), cost_nanos=7, cost_items={}),
    ]
    await LedgerRepository(engine).write_batch(events)
    async with engine.connect() as conn:
        assert await range_spend(conn, "key", KEY, start, T0 + timedelta(microseconds=200)) == 10
        assert await range_spend(conn, "key", KEY, start, T0 + timedelta(microseconds=301)) == 15
        assert await range_spend(conn, "key", KEY, start, T0) == 7
        assert await range_spend(conn, "team", "team-a", start, T0 + timedelta(seconds=1)) == 15
        with pytest.raises(ValueError):
            await range_spend(conn, "global", "", start, T0)


async def test_a_later_adjustment_is_dated_after_the_one_before(engine: AsyncEngine) -> None:
    first = T0 + timedelta(seconds=5)
    async with engine.begin() as conn:
        await record_key_adjustment(conn, _adjustment(first, 100, 0))
    since = datetime(2026, 11, 18, tzinfo=UTC)
    async with engine.connect() as conn:
        # A clock read before the first adjustment was written: just after it instead.
        assert await adjustment_time(conn, KEY, T0, since) == first + timedelta(microseconds=1)
        later = first + timedelta(seconds=1)
        assert await adjustment_time(conn, KEY, later, since) == later
        assert await adjustment_time(conn, "other-key", T0, since) == T0


# -- a reset moves the key's main window only ---------------------------------------------------

DAY_START = datetime(2026, 11, 18, tzinfo=UTC)
EARLIER = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
"""An event earlier in the month than the reset's day."""


def _main_reset(at: datetime, from_nanos: int, to_nanos: int = 0) -> KeyAdjustment:
    """The key's daily main window set from ``from_nanos`` to ``to_nanos`` at ``at``."""
    return KeyAdjustment(
        key_id=KEY,
        at=at,
        by="master_key",
        from_nanos=from_nanos,
        to_nanos=to_nanos,
        budget_duration="1d",
        period_start=DAY_START,
    )


async def _spent_then_reset(engine: AsyncEngine) -> tuple[int, int]:
    """Five calls today (12:00), one on the 2nd, then the daily main window reset to 0 at
    12:01; returns (today's spend, the 2nd's)."""
    today = [make_event(n) for n in range(5)]
    earlier = make_event(9, occurred_at=EARLIER, cost_nanos=7_000)
    await LedgerRepository(engine).write_batch([*today, earlier])
    spent = sum(e.cost_nanos for e in today)
    async with engine.begin() as conn:
        assert await record_key_adjustment(conn, _main_reset(T0 + timedelta(minutes=1), spent)) is not None
    return spent, earlier.cost_nanos


async def test_a_reset_moves_the_main_window_and_no_other_window_of_the_key(engine: AsyncEngine) -> None:
    today, earlier = await _spent_then_reset(engine)
    now = T0 + timedelta(minutes=30)
    day, month, life = parse_window("1d"), parse_window("1mo"), parse_window("lifetime")
    queries = {
        "main day": SpendQuery("key", KEY, day),
        "day, real": SpendQuery("key", KEY, day, adjustments=False),
        "month, real": SpendQuery("key", KEY, month, adjustments=False),
        "lifetime, real": SpendQuery("key", KEY, life, adjustments=False),
        "month of a model": SpendQuery("key", KEY, month, model="gpt-4o-mini", adjustments=False),
        "main month": SpendQuery("key", KEY, month),
        "team month": SpendQuery("team", "team-a", month, adjustments=False),
    }
    async with engine.connect() as conn:
        found = await scope_spend(conn, queries.values(), now=now)
    spend = {name: found[q].spend_nanos for name, q in queries.items()}
    assert spend == {
        "main day": 0,
        "day, real": today,
        "month, real": today + earlier,
        "lifetime, real": today + earlier,
        "month of a model": today + earlier,
        # A main window counts every adjustment in its period, whatever its duration.
        "main month": earlier,
        "team month": today + earlier,
    }
    # The adjustment has its own rollup rows, and the key's rows still hold it (reports by key).
    assert await rollup_totals(engine, 900, ADJUSTMENT_ROLLUP) == (0, -today)
    assert await rollup_totals(engine, 86400, "key") == (6, earlier)

    # The counters' seed loader: the main window's counter holds the value set, the others real spend.
    main = BudgetLimit.of(Scope("key", KEY), "1d", USD, main=True)
    monthly = BudgetLimit.of(Scope("key", KEY), "1mo", USD)
    rolling = BudgetLimit.of(Scope("key", KEY), "rolling:7d", USD)
    model = BudgetLimit.of(Scope("key_model", f"{KEY}:gpt-4o-mini"), "1mo", USD, main=True)
    seeds = {
        name: await period_spend(engine, b, b.period_at(now), tz="UTC", served_by=lambda _: ["dep-1"])
        for name, b in (("main", main), ("monthly", monthly), ("rolling", rolling), ("model", model))
    }
    assert seeds == {"main": 0, "monthly": today + earlier, "rolling": today, "model": today + earlier}
    # A rolling window read from the events: the key's main one counts it, any other leaves it out.
    assert await current_period_spend(engine, "key", KEY, "rolling:1h", now=now) == 0
    many = await current_period_spend_many(
        engine, [ScopeWindow("key", KEY, "rolling:1h", adjustments=False)], now=now
    )
    assert [spend for _, spend in many.values()] == [today]


async def test_a_part_of_a_bucket_leaves_the_adjustment_out_of_the_other_windows(engine: AsyncEngine) -> None:
    """A 20-minute window's period is not whole 15-minute buckets: its edges are read from
    the events, where the adjustment is left out by its status."""
    call = make_event(1, occurred_at=T0 + timedelta(minutes=21), cost_nanos=5_000)
    await LedgerRepository(engine).write_batch([call])
    async with engine.begin() as conn:
        await record_key_adjustment(conn, _main_reset(T0 + timedelta(minutes=22), 5_000))
    now = T0 + timedelta(minutes=30)
    window = parse_window("20m")
    main, other = SpendQuery("key", KEY, window), SpendQuery("key", KEY, window, adjustments=False)
    async with engine.connect() as conn:
        found = await scope_spend(conn, [main, other], now=now)
    assert (found[main].spend_nanos, found[other].spend_nanos) == (0, 5_000)
    items = [ScopeWindow("key", KEY, window), ScopeWindow("key", KEY, window, adjustments=False)]
    rebuilt = await current_period_spend_many(engine, items, now=now)
    assert [rebuilt[i][1] for i in items] == [0, 5_000]


async def test_a_window_run_from_its_start_is_seeded_for_the_period_given(engine: AsyncEngine) -> None:
    """A ``2d`` window counted from its budget's start: the seed reads that period, not the
    one counted from the epoch."""
    epoch_block = period_for(parse_window("2d"), T0, "UTC")
    anchor = epoch_block.start + timedelta(days=1)
    budget = BudgetLimit.of(Scope("key", KEY), "2d", USD, anchor=anchor, main=True)
    period = budget.period_at(anchor + timedelta(days=1, hours=1))
    assert period.start == anchor and period != epoch_block
    inside = make_event(1, occurred_at=epoch_block.end + timedelta(minutes=5), cost_nanos=11)
    before = make_event(2, occurred_at=anchor - timedelta(minutes=5), cost_nanos=13)
    await LedgerRepository(engine).write_batch([inside, before])
    assert await period_spend(engine, budget, period, tz="UTC", served_by=lambda _: []) == 11
