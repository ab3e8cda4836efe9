"""Migration 0014 on SQLite and PostgreSQL: the rows of every model together per key and
per customer (``rollups.TOTALS``) backfilled from a ledger written before it, exactly as
both writers and a key's adjustments now keep them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from migration_helpers import downgrade
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage import Usage
from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.ledger.rollups import TOTALS
from spendgate.stores.database import upgrade

pytestmark = pytest.mark.asyncio

T0 = datetime(2025, 1, 30, 21, 10, tzinfo=UTC)
_TYPES = ", ".join(f"'{t}'" for t in TOTALS.values())


def _event(i: int) -> SpendEvent:
    return SpendEvent(
        event_id=f"e-{i}",
        occurred_at=T0 + timedelta(minutes=23 * i),
        cost_nanos=1_000_003 * (1 + i % 5),
        usage=Usage(input_tokens=10 + i, output_tokens=i % 7, cache_read_tokens=i % 3),
        status=EventStatus.ERROR if i % 13 == 0 else EventStatus.SUCCESS,
        api_key=f"k{i % 4}" if i % 9 else None,
        user_id=f"u{i % 3}",
        team_id=f"t{i % 2}" if i % 5 else None,
        organization_id="o1",
        end_user=f"c{i % 6}" if i % 2 else None,
        model=f"m{i % 3}" if i % 17 else None,
        provider=f"p{i % 2}",
        latency_ms=100 + i,
    )


async def _totals(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT grain, bucket, scope_type, scope_id, model, provider, deployment_id, requests, "  # noqa: S608
                "successful_requests, failed_requests, cost_nanos, input_tokens, output_tokens, "
                f"cache_read_tokens, latency_ms FROM spend_rollups WHERE scope_type IN ({_TYPES}) "
                "ORDER BY 1, 2, 3, 4"
            )
        )
        return [tuple(r) for r in rows]


async def test_upgrade_backfills_what_the_writers_now_keep(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0013")
    events = [_event(i) for i in range(300)]
    repository = LedgerRepository(fresh_engine)
    await repository.write_batch(events[:150])
    await repository.write_batch(events[150:])  # adds to the rows of the first batch
    async with fresh_engine.begin() as conn:  # a key's spend set: in its key_total rows too
        await record_key_adjustment(
            conn,
            KeyAdjustment(
                key_id="k1", at=T0 + timedelta(hours=5), by="master_key", from_nanos=9_000_000,
                to_nanos=0, budget_duration=None, period_start=T0,
            ),
        )  # fmt: skip
    written = await _totals(fresh_engine)
    assert {r[2] for r in written} == set(TOTALS.values()) and {r[0] for r in written} == {900, 3600, 86400}
    assert {r[4:7] for r in written} == {("", "", "")}
    # Each scope's totals are its events' (and, for keys, the adjustment's) sums.
    day = [r for r in written if r[0] == 86400]
    for scope, total in TOTALS.items():
        cost = sum(r[10] for r in day if r[2] == total)
        extra = -9_000_000 if scope == "key" else 0
        assert cost == sum(e.cost_nanos for e in events) + extra, scope
        assert sum(r[7] for r in day if r[2] == total) == len(events)
    async with fresh_engine.begin() as conn:  # a ledger from before 0014: no such rows
        await conn.execute(text(f"DELETE FROM spend_rollups WHERE scope_type IN ({_TYPES})"))  # noqa: S608

    await upgrade(fresh_engine)
    assert await _totals(fresh_engine) == written
    async with fresh_engine.begin() as conn:
        await conn.run_sync(downgrade, "0013")
    assert await _totals(fresh_engine) == []
    await upgrade(fresh_engine)
    assert await _totals(fresh_engine) == written
