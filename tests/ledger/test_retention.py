from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import count_events, make_event, rollup_totals

from db_helpers import clear_database
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine, drop_expired_partitions, ensure_partitions_ahead
from spendgate.stores.database.partitions import list_partitions, parse_retention


def _month(year: int, month: int) -> datetime:
    return datetime(year, month, 10, 12, tzinfo=UTC)


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_postgres_partitions_ahead_on_demand_and_retention(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    await clear_database(engine)
    created = await ensure_partitions_ahead(engine, datetime(2031, 11, 20, tzinfo=UTC))
    assert created == [(2031, 11), (2031, 12), (2032, 1)]
    assert await ensure_partitions_ahead(engine, datetime(2031, 11, 20, tzinfo=UTC)) == []
    # A month with no partition yet is created on demand before the insert.
    events = [make_event(i, occurred_at=_month(2030, 1 + i)) for i in range(6)]
    assert (await LedgerRepository(engine).write_batch(events)).inserted == 6
    async with engine.connect() as conn:
        months = await list_partitions(conn)
    assert {(2030, m) for m in range(1, 7)} <= set(months)
    before = await spend_report(
        engine,
        start=datetime(2030, 1, 1, tzinfo=UTC),
        end=datetime(2030, 7, 1, tzinfo=UTC),
        group_by=["team"],
    )

    dropped = await drop_expired_partitions(engine, "90d", now=datetime(2030, 7, 15, tzinfo=UTC))
    # cutoff 2030-04-16: January, February and March ended before it; April did not.
    assert {"spend_events_p2030_01", "spend_events_p2030_02", "spend_events_p2030_03"} <= set(dropped)
    assert "spend_events_p2030_04" not in dropped
    async with engine.connect() as conn:
        months = await list_partitions(conn)
    assert (2030, 3) not in months and (2030, 4) in months
    assert await count_events(engine) == 3
    # Reports read the rollups, which retention keeps: still exact.
    after = await spend_report(
        engine,
        start=datetime(2030, 1, 1, tzinfo=UTC),
        end=datetime(2030, 7, 1, tzinfo=UTC),
        group_by=["team"],
    )
    assert after.totals == before.totals and after.totals.requests == 6
    # A late (replayed) event for a dropped month still lands: the partition comes back.
    late = LedgerRepository(engine)
    assert (await late.write_batch([make_event(99, occurred_at=_month(2030, 2))])).inserted == 1
    await engine.dispose()


@pytest.mark.asyncio
async def test_sqlite_retention_deletes_by_time(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    await clear_database(engine)
    await LedgerRepository(engine).write_batch(
        [make_event(i, occurred_at=_month(2030, 1 + i)) for i in range(6)]
    )
    assert await drop_expired_partitions(engine, "90d", now=datetime(2030, 7, 15, tzinfo=UTC)) == [
        "4 rows"
    ]  # by time, not by month
    assert await count_events(engine) == 2
    assert await rollup_totals(engine, 3600) == (6, sum(1000 + i for i in range(6)))
    await engine.dispose()


def test_parse_retention() -> None:
    assert parse_retention("90d") == timedelta(days=90)
    assert parse_retention("12w") == timedelta(weeks=12)
    assert parse_retention("6mo") == timedelta(days=180)
    with pytest.raises(ValueError, match="spend_logs_retention"):
        parse_retention("forever")
