"""The daily rollup grain (UTC days, migration 0011), on SQLite and PostgreSQL: the writer
keeps it with the 15-minute and hourly grains, each daily row is the sum of its day's
hourly rows, and reports that read it (UTC days, weeks, months; the whole UTC days inside
a Europe/Berlin month) equal the raw events to the nano-USD."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import make_event
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from test_reports_match_events import expected, observed

from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository
from spendgate.ledger.rollups import METRICS
from spendgate.stores.database.models import SpendRollup

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 2, 20, 21, 7, tzinfo=UTC)  # Berlin: a month turns, then DST starts (29 March)
DAY = 86400


def _events(n: int) -> list:
    return [
        make_event(
            i,
            event_id=f"d-{i}",
            occurred_at=T0 + timedelta(minutes=53 * i),
            cost_nanos=1_000_003 + 7 * i,
            api_key=f"k{i % 5}",
            team_id=("t1", "t2", None)[i % 3],
            model=("m1", "m2")[i % 2],
            tags=(("a", "b"), ("b",), ())[i % 3],
        )
        for i in range(n)
    ]


async def _rows(engine: AsyncEngine, grain: int) -> list[tuple]:
    r = SpendRollup
    async with engine.connect() as conn:
        result = await conn.execute(
            select(r.bucket, r.scope_type, r.scope_id, r.model, r.provider, r.deployment_id,
                   *(getattr(r, m) for m in METRICS)).where(r.grain == grain)
        )  # fmt: skip
        return [tuple(row) for row in result]


async def _days_and_their_hours(engine: AsyncEngine) -> tuple[dict[tuple, list[int]], dict[tuple, list[int]]]:
    """(the daily rows, the hourly rows summed per UTC day), by (day, scope, model…)."""
    summed: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(METRICS))
    for bucket, *key_and_metrics in await _rows(engine, 3600):
        key, metrics = tuple(key_and_metrics[:5]), key_and_metrics[5:]
        acc = summed[(bucket // DAY * DAY, *key)]
        for i, v in enumerate(metrics):
            acc[i] += v
    daily = {(b, *k[:5]): list(k[5:]) for b, *k in await _rows(engine, DAY)}
    return daily, dict(summed)


async def test_each_daily_row_is_the_sum_of_its_hours(engine: AsyncEngine) -> None:
    events = _events(1_500)  # 55 days
    repo = LedgerRepository(engine)
    await repo.write_batch(events[:700])
    await repo.write_batch(events)  # a replayed part counts once
    daily, summed = await _days_and_their_hours(engine)
    assert daily == summed
    cost = sum(v[METRICS.index("cost_nanos")] for k, v in daily.items() if k[1] == "global")
    assert cost == sum(e.cost_nanos for e in events)


async def test_recompute_sets_the_days_from_the_hours(engine: AsyncEngine) -> None:
    """The repair after an old gateway wrote without the daily grain: the days are set
    from the hours (from a day on, or all), however wrong they were, as often as asked."""
    repo = LedgerRepository(engine)
    await repo.write_batch(_events(600))  # 22 days from 2026-02-20
    good, summed = await _days_and_their_hours(engine)
    first, late = min(k[0] for k in good), datetime(2026, 3, 5, tzinfo=UTC)
    async with engine.begin() as conn:  # missed events, a stray row, a lost day
        await conn.execute(text("UPDATE spend_rollups SET cost_nanos = cost_nanos - 1 WHERE grain = 86400"))
        await conn.execute(
            text("DELETE FROM spend_rollups WHERE grain = 86400 AND bucket = :b"), {"b": first + DAY}
        )
    assert await repo.recompute_daily_rollups(late) == sum(1 for k in good if k[0] >= late.timestamp())
    daily, _ = await _days_and_their_hours(engine)
    assert {k: v for k, v in daily.items() if k[0] >= late.timestamp()} == {
        k: v for k, v in summed.items() if k[0] >= late.timestamp()
    }
    assert daily != summed  # the days before --since are left as they were
    for _ in range(2):
        assert await repo.recompute_daily_rollups() == len(good)
        assert (await _days_and_their_hours(engine))[0] == summed


@pytest.mark.parametrize(
    ("tz", "granularity", "grain"),
    [
        ("UTC", "day", DAY),
        ("UTC", "week", DAY),
        ("UTC", "month", DAY),
        ("UTC", None, DAY),
        ("Europe/Berlin", "month", 3600),  # whole UTC days from the daily grain, edges by hour
        ("Europe/Berlin", "week", 3600),
        ("Asia/Kolkata", "month", 900),
    ],
)
async def test_reports_on_the_daily_grain_equal_the_events(
    engine: AsyncEngine, tz: str, granularity: str | None, grain: int
) -> None:
    events = _events(1_500)
    await LedgerRepository(engine).write_batch(events)
    start, end = datetime(2026, 2, 22, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC)
    for group_by in ([], ["team", "model"], ["key"], ["tag"]):
        report = await spend_report(
            engine, start=start, end=end, group_by=group_by, granularity=granularity, tz=tz
        )
        assert report.grain == grain
        want = expected(events, group_by, granularity, tz, report.start, report.end)
        got = observed(report)
        assert got == want, (group_by, granularity, tz)
