"""Spend adjustments in the ledger (an administrator set a key's spend): one append-only
event that counts in its key's spend only, never as a request, never in the team's, the
user's or the proxy's spend — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import T0, make_event, rollup_totals
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.periods import parse_window
from spendgate.ledger.adjustments import KeyAdjustment, adjustment_time, record_key_adjustment
from spendgate.ledger.rebuild import current_period_spend
from spendgate.ledger.repository import LedgerRepository
from spendgate.ledger.scope_spend import SpendQuery, range_spend, scope_spend
from spendgate.stores.database.models import SpendEventRow

pytestmark = pytest.mark.asyncio
KEY = "hash-a"


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
