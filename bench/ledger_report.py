"""Report latency over a month of rollups standing for 10 million spend events.

What it measures, honestly: reports read the rollup table, never raw events, so this
benchmark fills ``spend_rollups`` directly in PostgreSQL (``generate_series``) with the
rows the recorder would have written for ``--events`` events over 30 days: both grains
(15 min, 1 h) and several scope types (global, team, org, key), ``--teams`` × ``--models``
combinations in every hour, their ``requests`` adding up to ``--events``. It then times
``spend_report`` (SQL + building the Python rows, end to end) for a 30-day report by
hour × team × model, and two variants that read the 15-minute grain or whole days.

    .venv/bin/python bench/ledger_report.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).parent))
from ledger_ingest import drop_database, fresh_database
from spendgate.ledger.reports import spend_report
from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.models import SpendRollup

START = datetime(2026, 10, 1, tzinfo=UTC)

# One INSERT … SELECT per (grain, scope type); all values are bound parameters.
FILL = text(
    """
    INSERT INTO spend_rollups (grain, bucket, scope_type, scope_id, model, provider, deployment_id,
        requests, successful_requests, failed_requests, unpriced_requests, estimated_requests, cost_nanos,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, latency_ms)
    SELECT :grain, b, :scope_type, CASE WHEN :scopes = 1 THEN '' ELSE :prefix || s END,
           'model-' || m, 'provider-' || (m % 3), '',
           r, r, 0, 0, 0, r * (150000 + m * 1000 + s), r * 900, r * 120, r * 200, 0, 0, r * 800
    FROM generate_series(:lo, :hi - 1, :grain) AS b,
         generate_series(0, :scopes - 1) AS s,
         generate_series(0, :models - 1) AS m,
         LATERAL (SELECT :per_row + ((b / :grain + s + m) % 3) - 1 AS r) AS x
    """
)


async def fill(url: str, events: int, teams: int, models: int, days: int) -> int:
    engine = create_engine(url)
    await upgrade(engine)
    lo = int(START.timestamp())
    hi = lo + days * 86400
    scopes = {"global": ("", 1), "team": ("team-", teams), "org": ("org-", 3), "key": ("key-", 50)}
    async with engine.begin() as conn:
        for grain in (900, 3600):
            buckets = (hi - lo) // grain
            for scope_type, (prefix, n) in scopes.items():
                per_row = max(1, round(events / (buckets * n * models)))
                await conn.execute(
                    FILL,
                    {"grain": grain, "scope_type": scope_type, "prefix": prefix, "scopes": n,
                     "models": models, "lo": lo, "hi": hi, "per_row": per_row},
                )  # fmt: skip
        await conn.execute(text("ANALYZE spend_rollups"))
    async with engine.connect() as conn:
        total = (
            await conn.execute(
                select(func.sum(SpendRollup.requests)).where(
                    SpendRollup.grain == 3600, SpendRollup.scope_type == "team"
                )
            )
        ).scalar_one()
        rows = (await conn.execute(select(func.count()).select_from(SpendRollup))).scalar_one()
    await engine.dispose()
    print(f"rollup table: {rows:,} rows standing for {int(total):,} events", flush=True)
    return int(total)


async def timed(url: str, runs: int, **kwargs: object) -> tuple[float, float, int]:
    engine = create_engine(url)
    samples = []
    report = None
    for _ in range(runs + 2):
        started = time.perf_counter()
        report = await spend_report(engine, **kwargs)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    samples = samples[2:]  # warm-up
    assert report is not None
    p95 = statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)
    return statistics.median(samples), p95, len(report.rows)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    url, name = await fresh_database(args.database_url)
    try:
        started = time.perf_counter()
        await fill(url, args.events, args.teams, args.models, 30)
        print(f"filled in {time.perf_counter() - started:.0f}s", flush=True)
        end = START + timedelta(days=30)
        cases = [
            ("30 d, hour × team × model, UTC (1 h grain)", {"granularity": "hour", "tz": "UTC"}),
            (
                "30 d, hour × team × model, Asia/Kolkata (15 min grain)",
                {"granularity": "hour", "tz": "Asia/Kolkata"},
            ),
            (
                "30 d, day × team × model, Europe/Berlin (1 h grain)",
                {"granularity": "day", "tz": "Europe/Berlin"},
            ),
            ("30 d, team × model totals, UTC", {"granularity": None, "tz": "UTC"}),
        ]
        for label, kwargs in cases:
            p50, p95, rows = await timed(
                url, args.runs, start=START, end=end, group_by=["team", "model"], **kwargs
            )
            print(f"{label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms ({rows:,} rows)", flush=True)
    finally:
        await drop_database(args.database_url, name)


if __name__ == "__main__":
    asyncio.run(main())
