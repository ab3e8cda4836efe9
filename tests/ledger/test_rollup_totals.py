"""The rollup rows of every model together (``rollups.TOTALS``: ``key_total``,
``customer_total``) on SQLite and PostgreSQL: each is, in every metric, grain and bucket,
the sum of its key's or customer's rows (adjustments included), whichever way they were
written (batches, PostgreSQL's two concurrent halves, several writers at once, a key's
adjustments racing them, the daily rows recomputed); and the reports that read them equal
those that read the rows per model."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ledger_helpers import make_event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db_helpers import clear_database
from spendgate.core.usage.model import Usage
from spendgate.ledger.adjustments import KeyAdjustment, record_key_adjustment
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.reports import Totals, spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.ledger.rollups import GRAINS, METRICS, TOTALS
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import SpendRollup

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 3, 28, 21, 50, tzinfo=UTC)  # Berlin's DST starts on the 29th
KEYS = ["k0", "k1", "k2"]


def _events(n: int, prefix: str, step: timedelta = timedelta(seconds=97)) -> list[SpendEvent]:
    statuses = [EventStatus.SUCCESS, EventStatus.ERROR, EventStatus.CANCELLED]
    return [
        make_event(
            i,
            event_id=f"{prefix}-{i}",
            occurred_at=T0 + i * step,
            cost_nanos=0 if i % 13 == 0 or i % 19 == 0 else 1_000_003 * (1 + i % 7),
            usage=Usage(
                input_tokens=i % 50, output_tokens=i % 9, reasoning_tokens=i % 3, cache_read_tokens=i % 4
            ),
            status=statuses[i % 3],
            unpriced=i % 13 == 0,
            estimated=i % 17 == 0,
            cache_hit=i % 19 == 0,
            saved_nanos=5 * i if i % 19 == 0 else 0,
            latency_ms=None if i % 11 == 0 else i,
            api_key=KEYS[i % 3] if i % 10 else None,
            end_user=f"c{i % 4}" if i % 6 else None,
            model=f"m{i % 5}" if i % 23 else None,
            provider=("p", "q")[i % 2],
            deployment_id=f"d{i % 2}" if i % 7 else None,
            tags=(("a", "b"), ("b",), ())[i % 3],
        )
        for i in range(n)
    ]


async def _adjust(engine: AsyncEngine, key: str, at: datetime, amount: int) -> None:
    async with engine.begin() as conn:
        await record_key_adjustment(
            conn,
            KeyAdjustment(
                key_id=key,
                at=at,
                by="test",
                from_nanos=0,
                to_nanos=amount,
                budget_duration=None,
                period_start=at,
            ),
        )


async def _check_totals(engine: AsyncEngine) -> dict[str, int]:
    """Every total row is its scope's rows summed (every metric, grain, bucket, id), with
    model, provider and deployment ''; returns each total's cost over the daily rows."""
    r = SpendRollup
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    r.grain,
                    r.bucket,
                    r.scope_type,
                    r.scope_id,
                    r.model,
                    r.provider,
                    r.deployment_id,
                    *(getattr(r, m) for m in METRICS),
                ).where(r.scope_type.in_([*TOTALS, *TOTALS.values()]))
            )
        ).all()
    summed: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * len(METRICS))
    totals: dict[tuple[Any, ...], list[int]] = {}
    for grain, bucket, scope_type, scope_id, model, provider, deployment, *metrics in rows:
        if scope_type in TOTALS:
            acc = summed[(grain, bucket, TOTALS[scope_type], scope_id)]
            for i, v in enumerate(metrics):
                acc[i] += v
        else:
            assert (model, provider, deployment) == ("", "", "")
            totals[(grain, bucket, scope_type, scope_id)] = list(metrics)
    assert totals == dict(summed)
    assert {k[0] for k in totals} <= set(GRAINS)
    cost = METRICS.index("cost_nanos")
    return {
        t: sum(v[cost] for k, v in totals.items() if k[0] == GRAINS[-1] and k[2] == t)
        for t in TOTALS.values()
    }


async def test_totals_are_their_rows_summed(engine: AsyncEngine) -> None:
    repo = LedgerRepository(engine)
    events = _events(2_600, "t")  # from 2,000 events PostgreSQL writes two halves at once
    await repo.write_batch(events[:300])
    await _adjust(engine, "k1", T0 + timedelta(hours=2), -7_000_000)
    await _adjust(engine, "k-only-adjusted", T0 + timedelta(hours=3), 5)
    await _adjust(engine, "k-only-adjusted", T0 + timedelta(hours=3), -5)  # nets to zero
    await repo.write_batch(events)  # adds only the 2,300 new ones
    await repo.write_batch(events[100:200])  # duplicates: nothing
    cost = await _check_totals(engine)
    assert cost == {"key_total": sum(e.cost_nanos for e in events) - 7_000_000,
                    "customer_total": sum(e.cost_nanos for e in events)}  # fmt: skip
    # The daily rows recomputed from the hours: the totals' too, still their rows' sums.
    await repo.recompute_daily_rollups()
    assert await _check_totals(engine) == cost


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
@pytest.mark.parametrize("granularity", [None, "hour", "day", "week"])
async def test_reports_of_the_totals_equal_those_per_model(
    engine: AsyncEngine, tz: str, granularity: str | None
) -> None:
    events = _events(600, "r", step=timedelta(minutes=7))
    await LedgerRepository(engine).write_batch(events)
    await _adjust(engine, "k1", T0 + timedelta(hours=5, minutes=1), 3_000_000)
    await _adjust(engine, "k2", T0 + timedelta(hours=26), -1_000_000)
    await _adjust(engine, "k2", T0 + timedelta(hours=27), 1_000_000)
    start, end = T0 + timedelta(hours=1, minutes=3), T0 + timedelta(days=2, hours=1)
    for dim in TOTALS:
        for ids in (None, ["k1", "c1", ""], ["k2"]):
            args: dict[str, Any] = dict(start=start, end=end, granularity=granularity, tz=tz, scope_ids=ids)
            alone = await spend_report(engine, group_by=[dim], **args)  # reads the totals
            per_model = await spend_report(engine, group_by=[dim, "model"], **args)
            folded: dict[Any, Any] = {}
            for row in per_model.rows:
                key = (row.period, row.values[0])
                if key in folded:
                    folded[key].add(row.totals)
                else:
                    folded[key] = row.totals
            want = {k: v for k, v in folded.items() if v != Totals()}  # a row: some figure not zero
            got = {(row.period, row.values[0]): row.totals for row in alone.rows}
            assert got == want, (dim, ids)
            assert alone.totals == per_model.totals


@pytest.mark.postgres
async def test_writers_and_adjustments_racing_on_the_totals(postgres_url: str) -> None:
    """Several writers (each big batch written as two transactions at once) and a key's
    adjustments, all adding to the same keys' and customers' total rows in the same
    buckets: none deadlocks (PostgreSQL would abort one), and every total is exact."""
    engine = create_engine(postgres_url, pool_size=20)
    try:
        await clear_database(engine)
        adjusted = 0
        events: list[SpendEvent] = []
        for round_ in range(3):
            batches = [_events(2_400, f"w{round_}-{n}", step=timedelta(seconds=41 + n)) for n in range(3)]
            events += [e for b in batches for e in b]
            amounts = [(KEYS[i % 3], T0 + timedelta(minutes=17 * i), 1_000 * (i + 1)) for i in range(12)]
            adjusted += sum(a for _, _, a in amounts)
            await asyncio.gather(
                *(LedgerRepository(engine).write_batch(b) for b in batches),
                *(_adjust(engine, *a) for a in amounts),
            )
        cost = await _check_totals(engine)
        assert cost == {"key_total": sum(e.cost_nanos for e in events) + adjusted,
                        "customer_total": sum(e.cost_nanos for e in events)}  # fmt: skip
    finally:
        await engine.dispose()
