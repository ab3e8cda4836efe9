"""Migration 0011 on SQLite and PostgreSQL: the keyset index of ``/spend/logs`` (on
PostgreSQL on every partition, and on the partitions made afterwards) and the daily rollup
grain backfilled from the hourly rows of a ledger written before it, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from migration_helpers import downgrade
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import upgrade
from spendgate.stores.database.partitions import ensure_partitions

pytestmark = pytest.mark.asyncio

INDEX = "ix_spend_events_occurred_at_event_id"
T0 = datetime(2025, 1, 30, 22, 0, tzinfo=UTC)


def _events() -> list[SpendEvent]:
    return [
        SpendEvent(
            event_id=f"e-{i}",
            occurred_at=T0 + timedelta(minutes=37 * i),
            cost_nanos=1_000_000_007 + i,
            usage=Usage(input_tokens=i, output_tokens=1),
            api_key=f"k{i % 3}",
            team_id=f"t{i % 2}",
            model="m",
            provider="p",
        )
        for i in range(400)  # 10 days over two months
    ]


async def _indexes(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%(occurred_at, event_id)'")
            )
        else:
            rows = await conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": INDEX}
            )
        return {name for (name,) in rows}


async def _daily(engine: AsyncEngine) -> list[tuple[int, str, str, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT bucket, scope_type, scope_id, requests, cost_nanos FROM spend_rollups "
                "WHERE grain = 86400 ORDER BY 1, 2, 3"
            )
        )
        return [tuple(r) for r in rows]


async def test_upgrade_indexes_and_backfills_the_days(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0010")
    events = _events()
    await LedgerRepository(fresh_engine).write_batch(events)
    written = await _daily(fresh_engine)
    async with fresh_engine.begin() as conn:  # a ledger from before 0011: no daily rows
        await conn.execute(text("DELETE FROM spend_rollups WHERE grain = 86400"))
    assert await _daily(fresh_engine) == [] and await _indexes(fresh_engine) == set()

    await upgrade(fresh_engine)
    assert await _daily(fresh_engine) == written  # each day the sum of its hours
    report = await spend_report(
        fresh_engine,
        start=T0 - timedelta(days=1),
        end=T0 + timedelta(days=12),
        group_by=["team"],
        granularity="day",
    )
    assert report.grain == 86400
    assert report.totals.cost_nanos == sum(e.cost_nanos for e in events)
    indexes = await _indexes(fresh_engine)
    if fresh_engine.dialect.name == "postgresql":
        # The parent's and one per partition (2025-01, 2025-02 and the months made ahead).
        async with fresh_engine.connect() as conn:
            count = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_inherits WHERE inhparent = CAST('spend_events' AS regclass)"
                    )
                )
            ).scalar_one()
        assert INDEX in indexes and "spend_events_p2025_01_occurred_at_event_id_idx" in indexes
        assert len(indexes) == count + 1
        async with fresh_engine.begin() as conn:  # a month made later gets it from the parent
            await ensure_partitions(conn, {(2031, 5)})
        assert "spend_events_p2031_05_occurred_at_event_id_idx" in await _indexes(fresh_engine)
    else:
        assert indexes == {INDEX}

    async with fresh_engine.begin() as conn:
        await conn.run_sync(downgrade, "0010")
    assert await _daily(fresh_engine) == [] and await _indexes(fresh_engine) == set()
    await upgrade(fresh_engine)
    assert await _daily(fresh_engine) == written
