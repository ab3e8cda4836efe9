from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import asyncpg
import orjson
import pytest
from ledger_helpers import T0, count_events, make_event, rollup_totals
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import clear_database
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.repository import LedgerRepository, _split_by_model
from spendgate.ledger.rollups import ROLLUP_KEY, rollup_deltas
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import SpendEventRow, SpendRollup


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
        usage=Usage(
            input_tokens=3_000_000_000, output_tokens=2**40 - 1, reasoning_tokens=5, seconds=Decimal("1.25")
        ),
        started_at=datetime(2026, 11, 18, 11, 59, 59, 123456, tzinfo=UTC),
        occurred_at=datetime(2026, 11, 18, 12, 0, 0, 654321, tzinfo=UTC),
        latency_ms=1234,
        tags=("a", "b"),
    )
    await LedgerRepository(engine).write_batch([event])
    async with engine.connect() as conn:
        row = (await conn.execute(select(SpendEventRow.__table__))).mappings().one()
    assert row["input_tokens"] == 3_000_000_000
    assert row["output_tokens"] == 2**40 - 1  # the largest count a usage may carry: past 32 bits
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


def test_pg_columns_match_to_row() -> None:
    """The COPY columns hold exactly what ``to_row`` says, and leave out only columns
    that are NULL (0 for counts) in every event of the batch."""
    from spendgate.ledger.repository import EVENT_COLUMNS, PG_COLUMNS, pg_columns

    # ``adjustment`` is only ever written with an admin's adjustment event (ledger.adjustments),
    # never by the batch writer: the staging table's NULL default fills it.
    assert sorted(PG_COLUMNS) == sorted(c for c in EVENT_COLUMNS if c != "adjustment")
    events = [
        make_event(
            3,
            usage=Usage(
                input_tokens=7, output_tokens=2, images=1, seconds=Decimal("2.5"), image_size="1024x1024"
            ),
            cost_items={"input": 10, "output_image": 5, "discount": -2},
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            messages=[{"role": "user", "content": "hi"}],
            latency_ms=12,
        ),
        make_event(
            4, tags=(), team_id="", end_user=None, latency_ms=0, usage=Usage(seconds=Decimal("0.0000005"))
        ),
        make_event(5, tags=("a", "b"), unpriced=True, cost_nanos=0, cost_items={}),
    ]
    columns = pg_columns(events)
    for i, event in enumerate(events):
        row = event.to_row()
        for name in PG_COLUMNS:
            default = 0 if name.endswith(("_tokens", "_nanos", "_micros")) or name in _COUNT_COLUMNS else None
            default = False if name == "cache_hit" else default
            value = columns[name][i] if name in columns else default
            if name in ("request_tags", "messages", "response") and value is not None:
                value = orjson.loads(cast("str | bytes", value))
            assert value == row[name], (name, i)
    # Empty in the whole batch: not sent at all.
    assert {
        "response",
        "batch_id",
        "cache_write_tokens",
        "cost_tools_nanos",
        "web_search_requests",
        "cache_hit",
        "saved_nanos",
    }.isdisjoint(columns)
    # A batch with a response-cache hit sends both cache columns, for every event.
    hit = make_event(6, cost_nanos=0, cost_items={}, cache_hit=True, saved_nanos=1234)
    with_hit = pg_columns([*events, hit])
    assert with_hit["cache_hit"] == [False, False, False, True]
    assert with_hit["saved_nanos"] == [0, 0, 0, 1234]
    # "" is a value, not NULL; False and 0 are values of required columns.
    assert columns["team_id"][1] == "" and columns["unpriced"] == [False, False, True]


_COUNT_COLUMNS = {
    "images",
    "input_images",
    "input_characters",
    "output_characters",
    "queries",
    "web_search_requests",
}


async def _rollup_rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(SpendRollup.__table__).order_by(*SpendRollup.__table__.c))
        ).mappings()
        return sorted((dict(r) for r in rows), key=lambda r: tuple(str(r[k]) for k in ROLLUP_KEY))


def _expected_rollups(events: list[SpendEvent]) -> list[dict[str, int | str]]:
    return sorted(rollup_deltas(events), key=lambda r: tuple(str(r[k]) for k in ROLLUP_KEY))


def _varied_events(n: int, prefix: str = "v") -> list[SpendEvent]:
    """Events over several models, scopes, tags, statuses and 15-minute buckets."""
    statuses = list(EventStatus)
    return [
        make_event(
            i,
            event_id=f"{prefix}-{i}",
            occurred_at=T0 + timedelta(seconds=7 * i),
            model=f"m{i % 5}" if i % 11 else None,
            provider="p" if i % 3 else "q",
            deployment_id=f"d{i % 2}" if i % 7 else None,
            api_key=f"k{i % 4}",
            user_id=f"u{i % 6}" if i % 5 else None,
            team_id=f"t{i % 3}" if i % 4 else "",
            end_user=f"c{i % 9}",
            tags=(("a", "b"), ("b",), ())[i % 3],
            status=statuses[i % len(statuses)],
            unpriced=i % 13 == 0,
            cost_nanos=0 if i % 13 == 0 else 1_000 + i,
            cost_items={} if i % 13 == 0 else {"input": 600 + i, "output": 400},
            estimated=i % 17 == 0,
            latency_ms=None if i % 19 == 0 else i,
            usage=Usage(
                input_tokens=i, output_tokens=2 * i, reasoning_tokens=i % 3, cache_write_tokens=i % 2
            ),
        )
        for i in range(n)
    ]


async def test_rollups_equal_the_python_aggregation(engine: AsyncEngine) -> None:
    """The rollups written (on PostgreSQL, aggregated in SQL by two concurrent
    transactions split by model) equal :func:`rollup_deltas` of the events, row for row;
    replaying part of the batch with new events adds only the new ones."""
    events = _varied_events(3_000)
    repo = LedgerRepository(engine)
    first = await repo.write_batch(events[:1_000])
    second = await repo.write_batch(events)
    assert (first.inserted, second.inserted, second.duplicates) == (1_000, 2_000, 1_000)
    assert await count_events(engine) == 3_000
    assert await _rollup_rows(engine) == _expected_rollups(events)


def test_split_by_model_never_shares_a_model() -> None:
    events = [*_varied_events(2_000), make_event(9_999, model="")]
    parts = _split_by_model(events)
    assert len(parts) == 2
    assert sorted(e.event_id for p in parts for e in p) == sorted(e.event_id for e in events)
    models = [{e.model or "" for e in part} for part in parts]
    assert not models[0] & models[1]  # None and "" are the same rollup model: one side
    largest = max(sum(1 for e in events if (e.model or "") == m) for m in models[0] | models[1])
    assert abs(len(parts[0]) - len(parts[1])) <= largest
    one_model = [make_event(i) for i in range(3)]
    assert _split_by_model(one_model) == [one_model]


async def test_concurrent_writers_stay_exact(engine: AsyncEngine) -> None:
    """Writers racing on the same rollup rows (same buckets, models and scopes), with
    overlapping batches, neither deadlock nor lose or double an increment."""
    events = _varied_events(4_000, prefix="c")
    repo = LedgerRepository(engine)
    chunks = [events[i : i + 1_000] for i in range(0, 4_000, 1_000)]
    results = await asyncio.gather(
        *(repo.write_batch(chunk) for chunk in chunks),
        LedgerRepository(engine).write_batch(events[500:2_500]),  # overlaps two chunks
    )
    assert sum(r.inserted for r in results) == 4_000
    assert sum(r.duplicates for r in results) == 2_000
    assert await _rollup_rows(engine) == _expected_rollups(events)


@pytest.mark.postgres
async def test_a_failing_half_fails_the_call_and_a_retry_completes(postgres_url: str) -> None:
    """PostgreSQL writes a big batch as two transactions: when one fails, the call raises
    (once both are done); the other may have committed, and the retry adds the rest."""
    engine = create_engine(postgres_url)
    try:
        await clear_database(engine)
        events = _varied_events(2_400, prefix="f")
        bad = events[5].with_(team_id="t" * 300)  # longer than the column: refused
        repo = LedgerRepository(engine)
        with pytest.raises(asyncpg.DataError):  # unwrapped, as the recorder expects from COPY
            await repo.write_batch([*events[:5], bad, *events[6:]])
        half = await count_events(engine)
        assert half in (0, *(len(p) for p in _split_by_model(events)))
        retry = await repo.write_batch(events)
        assert (retry.inserted, retry.duplicates) == (2_400 - half, half)
        assert await count_events(engine) == 2_400
        assert await _rollup_rows(engine) == _expected_rollups(events)
    finally:
        await engine.dispose()
