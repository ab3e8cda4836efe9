from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import count_events, make_event, rollup_totals
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.models import SpendEventRow


@pytest.mark.asyncio
async def test_same_event_twice_counts_once(engine: AsyncEngine) -> None:
    repo = LedgerRepository(engine)
    event = make_event(1)
    first = await repo.write_batch([event])
    second = await repo.write_batch([event])
    again = await repo.write_batch([event, event, make_event(2)])
    assert (first.inserted, second.inserted, second.duplicates) == (1, 0, 1)
    assert (again.inserted, again.duplicates) == (1, 2)
    assert await count_events(engine) == 2
    for grain in (900, 3600):
        assert await rollup_totals(engine, grain) == (2, event.cost_nanos + make_event(2).cost_nanos)
    assert await rollup_totals(engine, 900, "tag") == (2, 2003)


@pytest.mark.asyncio
async def test_round_trip_keeps_every_field(engine: AsyncEngine) -> None:
    event = make_event(
        7,
        usage=Usage(input_tokens=3_000_000_000, output_tokens=2**40, reasoning_tokens=5, seconds="1.25"),
        started_at=datetime(2026, 11, 18, 11, 59, 59, 123456, tzinfo=UTC),
        occurred_at=datetime(2026, 11, 18, 12, 0, 0, 654321, tzinfo=UTC),
        latency_ms=1234,
        tags=("a", "b"),
    )
    await LedgerRepository(engine).write_batch([event])
    async with engine.connect() as conn:
        row = (await conn.execute(select(SpendEventRow.__table__))).mappings().one()
    assert row["input_tokens"] == 3_000_000_000
    assert row["output_tokens"] == 2**40
    assert row["seconds_micros"] == 1_250_000
    assert row["occurred_at"] == event.occurred_at
    assert row["started_at"] == event.started_at
    assert row["request_tags"] == ["a", "b"]
    assert row["cost_input_nanos"] == 607
    assert SpendEvent.from_json(event.to_json()) == event


@pytest.mark.asyncio
async def test_multi_tag_event_counts_once_per_tag(engine: AsyncEngine) -> None:
    await LedgerRepository(engine).write_batch([make_event(1, tags=("a", "b", "a")), make_event(2, tags=())])
    assert await rollup_totals(engine, 3600, "tag") == (3, 2 * 1001 + 1002)
    assert await rollup_totals(engine, 3600, "team") == (2, 1001 + 1002)


@pytest.mark.asyncio
async def test_events_across_months(engine: AsyncEngine) -> None:
    events = [
        make_event(i, occurred_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=40 * i)) for i in range(6)
    ]
    result = await LedgerRepository(engine).write_batch(events)
    assert result.inserted == 6
    assert await LedgerRepository(engine).write_batch(events) == type(result)(0, 6)
    assert await count_events(engine) == 6


def test_copy_record_matches_to_row() -> None:
    import orjson

    from spendgate.ledger.repository import COPY_COLUMNS, EVENT_COLUMNS, _copy_record

    assert sorted(COPY_COLUMNS) == sorted(EVENT_COLUMNS)
    event = make_event(
        3,
        usage=Usage(input_tokens=7, output_tokens=2, images=1, seconds="2.5", image_size="1024x1024"),
        cost_items={"input": 10, "output_image": 5, "discount": -2},
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        messages=[{"role": "user", "content": "hi"}],
        latency_ms=12,
    )
    row = event.to_row()
    for column in ("request_tags", "messages", "response"):
        row[column] = None if row[column] is None else orjson.dumps(row[column]).decode()
    assert dict(zip(COPY_COLUMNS, _copy_record(event), strict=True)) == row
