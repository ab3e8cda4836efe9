"""Report latency over a month of rollups standing for 10 million spend events.

What it measures, honestly: reports read the rollup table, never raw events, so this
benchmark fills ``spend_rollups`` directly in PostgreSQL (``generate_series``) with the
rows the recorder would have written for ``--events`` events over 30 days: both grains
(15 min, 1 h) and several scope types (global, team, org, key), ``--teams`` × ``--models``
combinations in every hour, their ``requests`` adding up to ``--events``. It then times,
for a 30-day report by hour × team × model and three variants (the 15-minute grain,
whole days, no periods):

* ``spend_report``: from the call to the finished report (SQL, transfer, the columns
  and totals in Python) — what the API answers with;
* ``.rows``: building one ``ReportRow`` per row afterwards, for callers that want
  objects rather than columns;
* ``to_dict()``: the JSON-ready form (periods as ISO strings, USD as exact strings).

Each case runs ``--runs`` times after 2 warm-ups; the median, min–max and p95 are
printed with the load average of the (shared) machine.

    .venv/bin/python bench/ledger_report.py --runs 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

# The 15-minute rows of every scope type, and the hourly rows summed from them (as the
# writer does), inserted in time order as the writer would: a bucket's rows of every
# scope type sit together in the table. All values are bound parameters.
FILL = text(
    """
    WITH scopes (scope_type, prefix, n) AS (
        VALUES ('global', '', 1), ('team', 'team-', :teams), ('org', 'org-', 3), ('key', 'key-', 50)
    ), fine AS (
        SELECT 900 AS grain, b AS bucket, scope_type,
               CASE WHEN n = 1 THEN '' ELSE prefix || s END AS scope_id,
               'model-' || m AS model, 'provider-' || (m % 3) AS provider, '' AS deployment_id,
               r AS requests, r AS successful_requests, 0 AS failed_requests, 0 AS unpriced_requests,
               0 AS estimated_requests, r * (150000 + m * 1000 + s) AS cost_nanos, r * 900 AS input_tokens,
               r * 120 AS output_tokens, r * 200 AS cache_read_tokens, 0 AS cache_write_tokens,
               0 AS reasoning_tokens, r * 800 AS latency_ms
        FROM generate_series(:lo, :hi - 1, 900) AS b, scopes,
             LATERAL generate_series(0, n - 1) AS s,
             generate_series(0, :models - 1) AS m,
             LATERAL (SELECT greatest(1, round(CAST(:events AS numeric) / (:buckets * n * :models)))::bigint
                             + ((b / 900 + s + m) % 3) - 1 AS r) AS x
    ), coarse AS (
        SELECT 3600, bucket / 3600 * 3600, scope_type, scope_id, model, provider, deployment_id,
               sum(requests), sum(successful_requests), sum(failed_requests), sum(unpriced_requests),
               sum(estimated_requests), sum(cost_nanos), sum(input_tokens), sum(output_tokens),
               sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(latency_ms)
        FROM fine GROUP BY 1, 2, 3, 4, 5, 6, 7
    )
    INSERT INTO spend_rollups (grain, bucket, scope_type, scope_id, model, provider, deployment_id,
        requests, successful_requests, failed_requests, unpriced_requests, estimated_requests, cost_nanos,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, latency_ms)
    SELECT * FROM (SELECT * FROM fine UNION ALL SELECT * FROM coarse) AS rows
    ORDER BY bucket / 3600, grain DESC, bucket
    """
)


async def fill(url: str, events: int, teams: int, models: int, days: int) -> int:
    engine = create_engine(url)
    await upgrade(engine)
    lo = int(START.timestamp())
    hi = lo + days * 86400
    async with engine.begin() as conn:
        await conn.execute(
            FILL,
            {
                "teams": teams,
                "models": models,
                "lo": lo,
                "hi": hi,
                "events": events,
                "buckets": (hi - lo) // 900,
            },
        )
        await conn.execute(text("ANALYZE spend_rollups"))
    async with engine.connect() as conn:
        totals = {
            grain: (
                await conn.execute(
                    select(func.sum(SpendRollup.requests)).where(
                        SpendRollup.grain == grain, SpendRollup.scope_type == "team"
                    )
                )
            ).scalar_one()
            for grain in (900, 3600)
        }
        rows = (await conn.execute(select(func.count()).select_from(SpendRollup))).scalar_one()
    await engine.dispose()
    assert totals[900] == totals[3600], totals
    print(f"rollup table: {rows:,} rows standing for {int(totals[900]):,} events", flush=True)
    return int(totals[900])


async def timed(url: str, runs: int, events: int, **kwargs: object) -> dict[str, list[float]]:
    engine = create_engine(url)
    samples: dict[str, list[float]] = {"spend_report": [], ".rows": [], "to_dict()": []}
    for i in range(runs + 2):
        started = time.perf_counter()
        report = await spend_report(engine, **kwargs)  # type: ignore[arg-type]
        answered = time.perf_counter()
        rows = report.rows
        built = time.perf_counter()
        report.to_dict()
        if i >= 2:  # warm-up
            samples["spend_report"].append((answered - started) * 1000)
            samples[".rows"].append((built - answered) * 1000)
            samples["to_dict()"].append((time.perf_counter() - built) * 1000)
        assert report.totals.requests == events and len(rows) == report.row_count, report.totals
    await engine.dispose()
    samples["rows returned"] = [float(report.row_count)]
    return samples


def describe(samples: list[float]) -> str:
    p95 = statistics.quantiles(samples, n=20)[18] if len(samples) >= 2 else samples[0]
    return (
        f"p50 {statistics.median(samples):.0f} ms (min {min(samples):.0f}, max {max(samples):.0f}, "
        f"p95 {p95:.0f})"
    )


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
        events = await fill(url, args.events, args.teams, args.models, 30)
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
            load = os.getloadavg()[0]
            samples = await timed(
                url, args.runs, events, start=START, end=end, group_by=["team", "model"], **kwargs
            )
            rows = int(samples.pop("rows returned")[0])
            print(f"{label} ({rows:,} rows; load {load:.2f} → {os.getloadavg()[0]:.2f}):", flush=True)
            for measured, values in samples.items():
                print(f"    {measured:>12}: {describe(values)}", flush=True)
    finally:
        await drop_database(args.database_url, name)


if __name__ == "__main__":
    asyncio.run(main())
