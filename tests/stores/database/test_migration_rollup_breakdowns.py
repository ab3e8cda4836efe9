"""Migration 0012 on SQLite and PostgreSQL: the ``endpoint`` and ``mode`` rollup rows
backfilled from a ledger written before it, exactly as the writer keeps them now, with
the endpoints older versions recorded (the route as called, the SDK's endpoint name) filed
under their canonical path, and a key's spend adjustments left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from migration_helpers import downgrade
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage import Usage
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import upgrade

pytestmark = pytest.mark.asyncio

T0 = datetime(2025, 1, 30, 22, 0, tzinfo=UTC)
ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/messages", None)
Row = tuple[int, int, str, str, str, str, int, int, int, int]


def _event(i: int, endpoint: str | None, **fields: object) -> SpendEvent:
    return SpendEvent(
        event_id=f"e-{i}",
        occurred_at=T0 + timedelta(minutes=37 * i),
        cost_nanos=1_000_000_007 + i,
        usage=Usage(input_tokens=i, output_tokens=1),
        api_key=f"k{i % 3}",
        model=f"m{i % 2}",
        provider="p",
        endpoint=endpoint,
        batch_id="batch_x" if i % 7 == 0 else None,
        **fields,  # type: ignore[arg-type]
    )


async def _breakdowns(engine: AsyncEngine) -> list[Row]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT grain, bucket, scope_type, scope_id, model, provider, requests, "
                "successful_requests, cost_nanos, input_tokens FROM spend_rollups "
                "WHERE scope_type IN ('endpoint', 'mode') ORDER BY 1, 2, 3, 4, 5, 6"
            )
        )
        return [tuple(r) for r in rows]


async def _forget_breakdowns(engine: AsyncEngine) -> None:
    """A ledger from before 0012: its writer kept no breakdown rows."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM spend_rollups WHERE scope_type IN ('endpoint', 'mode')"))


async def test_upgrade_backfills_what_the_writer_now_keeps(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0011")
    events = [_event(i, ENDPOINTS[i % 4], status=EventStatus.ERROR if i % 11 == 0 else EventStatus.SUCCESS)
              for i in range(400)]  # fmt: skip
    await LedgerRepository(fresh_engine).write_batch(events)
    written = await _breakdowns(fresh_engine)
    assert {r[2] for r in written} == {"endpoint", "mode"} and {r[0] for r in written} == {900, 3600, 86400}
    await _forget_breakdowns(fresh_engine)

    await upgrade(fresh_engine)
    assert await _breakdowns(fresh_engine) == written
    report = await spend_report(
        fresh_engine, start=T0, end=T0 + timedelta(days=12), group_by=["mode"], granularity="day"
    )
    assert report.grain == 86400
    batch = [e for e in events if e.batch_id is not None]
    by_mode = {
        v: sum(r.totals.cost_nanos for r in report.rows if r.values == (v,)) for v in ("batch", "realtime")
    }
    assert by_mode == {
        "batch": sum(e.cost_nanos for e in batch),
        "realtime": sum(e.cost_nanos for e in events) - sum(e.cost_nanos for e in batch),
    }

    async with fresh_engine.begin() as conn:
        await conn.run_sync(downgrade, "0011")
    assert await _breakdowns(fresh_engine) == []
    await upgrade(fresh_engine)
    assert await _breakdowns(fresh_engine) == written


async def test_older_endpoint_names_are_filed_under_the_canonical_path(fresh_engine: AsyncEngine) -> None:
    await upgrade(fresh_engine, "0011")
    # The gateway recorded the route as called; the SDK, the endpoint's name.
    older = [
        "/chat/completions",
        "chat",
        "/v1/chat/completions",
        "/embeddings",
        "embeddings",
        "/v1/embeddings",
    ]
    events = [_event(i, older[i % 6]) for i in range(60)]
    await LedgerRepository(fresh_engine).write_batch(events)
    async with fresh_engine.begin() as conn:  # a key's spend set by /key/update: no request
        await conn.execute(
            text(
                "INSERT INTO spend_events (event_id, occurred_at, status, cost_nanos, api_key, endpoint, "
                "unpriced, estimated, cache_hit, saved_nanos) "
                "VALUES ('adj-1', :at, 'adjustment', -5000, 'k1', '/key/update', false, false, false, 0)"
            ),
            {"at": T0 + timedelta(hours=1)},
        )
    await _forget_breakdowns(fresh_engine)

    await upgrade(fresh_engine)
    report = await spend_report(fresh_engine, start=T0, end=T0 + timedelta(days=3), group_by=["endpoint"])
    totals = {r.values[0]: (r.totals.requests, r.totals.cost_nanos) for r in report.rows}
    chat = [e for e in events if "chat" in (e.endpoint or "")]
    embeddings = [e for e in events if "embeddings" in (e.endpoint or "")]
    assert totals == {
        "/v1/chat/completions": (len(chat), sum(e.cost_nanos for e in chat)),
        "/v1/embeddings": (len(embeddings), sum(e.cost_nanos for e in embeddings)),
    }
