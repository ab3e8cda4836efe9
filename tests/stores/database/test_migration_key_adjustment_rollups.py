"""Migration 0013 on SQLite and PostgreSQL: the ``key_adjustment`` rollup rows (what reads of
a key's windows other than its main one subtract) backfilled from the adjustments recorded
before it, exactly as ``record_key_adjustment`` now writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from migration_helpers import downgrade
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.stores.database import upgrade

pytestmark = pytest.mark.asyncio

T0 = datetime(2025, 1, 30, 23, 50, tzinfo=UTC)


async def _rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT grain, bucket, scope_id, model, provider, deployment_id, cost_nanos, requests, "
                "input_tokens, latency_ms FROM spend_rollups WHERE scope_type = 'key_adjustment' "
                "ORDER BY 1, 2, 3"
            )
        )
        return [tuple(r) for r in rows]


async def test_upgrade_backfills_the_adjustments_rows(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0012")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    # Two keys; two adjustments of one key in the same quarter hour, one the next day.
    changes = (("k1", 0, 5_000, 0), ("k1", 3, 0, 7), ("k2", 0, 9, 2), ("k1", 1500, 7, 1))
    async with fresh_engine.begin() as conn:
        for key, minutes, frm, to in changes:
            change = KeyAdjustment(
                key_id=key,
                at=T0 + timedelta(minutes=minutes),
                by="master_key",
                from_nanos=frm,
                to_nanos=to,
                budget_duration=None,
                period_start=epoch,
            )
            await record_key_adjustment(conn, change)
    written = await _rows(fresh_engine)
    assert {r[0] for r in written} == {900, 3600, 86400}
    assert sum(r[6] for r in written if r[0] == 900) == sum(to - frm for _, _, frm, to in changes)
    async with fresh_engine.begin() as conn:  # a ledger from before: no such rows
        await conn.execute(text("DELETE FROM spend_rollups WHERE scope_type = 'key_adjustment'"))

    await upgrade(fresh_engine)
    assert await _rows(fresh_engine) == written
    async with fresh_engine.begin() as conn:
        await conn.run_sync(downgrade, "0012")
    assert await _rows(fresh_engine) == []
    await upgrade(fresh_engine)
    assert await _rows(fresh_engine) == written
