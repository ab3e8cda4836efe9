"""The raw SQLite encoding of spend events stores exactly what SQLAlchemy stores."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, insert

from spendgate.core.usage.model import Usage
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.sqlite_batch import MAX_ROWS, SQLITE_COLUMNS, chunks, insert_statement, sqlite_row
from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.models import SpendEventRow

AT = datetime(2026, 11, 22, 17, 0, 0, tzinfo=UTC)


def _events() -> list[SpendEvent]:
    berlin = timezone(timedelta(hours=1))
    return [
        SpendEvent(event_id="plain", occurred_at=AT, cost_nanos=0),
        SpendEvent(
            event_id="full",
            occurred_at=datetime(2026, 3, 29, 2, 30, 0, 123456, tzinfo=berlin),
            started_at=datetime(2026, 3, 29, 1, 29, 59, 999999, tzinfo=UTC),
            status=EventStatus.PARTIAL,
            estimated=True,
            cost_nanos=123_456_789,
            cost_items={"input": 100, "cache_read": 23_456_689, "output": 100_000_000},
            usage=Usage(
                input_tokens=1_000_000_000_000,  # past 32 bits, under the 2^40 cap
                cache_read_tokens=5,
                output_tokens=7,
                reasoning_tokens=3,
                seconds=Decimal("12.3456785"),
                image_size="1024x1024",
                image_quality="high",
            ),
            catalogue_version="2026.11.22",
            price_source="bundled",
            service_tier="batch",
            api_key="k" * 64,
            user_id="ann",
            team_id="t1",
            organization_id="o1",
            end_user="cust-é",
            tags=("prod", "ünïcode", "prod"),
            requested_model="gpt-4o",
            model="gpt-4o-2024-08-06",
            resolved_model="gpt-4o",
            deployment_id="gpt-4o#1",
            provider="openai",
            endpoint="/v1/chat/completions",
            operation_id="op-1",
            batch_id="batch_1",
            latency_ms=1234,
            overhead_ms=2,
            messages=[{"role": "user", "content": 'hi "there"'}],
            response={"id": "x", "n": 1.5},
        ),
        SpendEvent(
            event_id="unpriced",
            occurred_at=AT + timedelta(microseconds=1),
            status=EventStatus.ERROR,
            unpriced=True,
            unpriced_reason="no price for model 'mystery'",
            cost_nanos=0,
            usage=Usage(input_tokens=10),
        ),
    ]


def _stored(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(spend_events)")]
        typed = ", ".join(f"{n}, typeof({n})" for n in names)
        return conn.execute(f"SELECT {typed} FROM spend_events ORDER BY event_id").fetchall()  # noqa: S608


@pytest.mark.asyncio
async def test_sqlite_batch_matches_sqlalchemy(tmp_path: Path) -> None:
    events = _events()
    paths = tmp_path / "sqlalchemy.db", tmp_path / "raw.db"
    for path in paths:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        async with engine.begin() as conn:
            if path is paths[0]:
                await conn.execute(insert(cast(Table, SpendEventRow.__table__)), [e.to_row() for e in events])
            else:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                cursor = await raw.execute(
                    insert_statement(len(events)), [v for e in events for v in sqlite_row(e)]
                )
                assert len(await cursor.fetchall()) == len(events)
        await engine.dispose()
    reference, raw_rows = (_stored(p) for p in paths)
    assert raw_rows == reference
    assert len(reference) == 3


def test_statement_limits() -> None:
    assert MAX_ROWS * len(SQLITE_COLUMNS) <= 32_766
    with pytest.raises(ValueError, match="an insert holds"):
        insert_statement(MAX_ROWS + 1)
    events = _events() * 200
    assert sum(len(c) for c in chunks(events)) == len(events)
    assert all(len(c) <= MAX_ROWS for c in chunks(events))
