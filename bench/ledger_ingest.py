"""Sustained ingest into the ledger (PostgreSQL or SQLite).

Two measurements, each on a fresh database migrated with ``alembic upgrade head`` and
repeated ``--rounds`` times (median and min–max printed, with the load average):

* ``repository``: ``LedgerRepository.write_batch`` called back to back with batches of
  ``--batch`` events (``--writers`` callers at once) — the database path alone: the
  events inserted idempotently and their rollups (2 grains × 7 scope types) upserted in
  the same transaction. On PostgreSQL a batch is split by model into two transactions
  that run concurrently (see ``ledger/repository.py``);
* ``recorder``: events go through ``Recorder.record`` (JSON journal line + queue) as fast
  as the recorder accepts them, and the clock stops when the last one is in the
  database — what one gateway process can sustain end to end.

Events look like the gateway's (request-id format, ``operation_id``, ``started_at``) with
realistic attribution cardinality (50 keys, 100 users, 20 teams, 5 orgs, 200 customers,
0–2 of 10 tags, 8 models on 5 providers, 2 deployments each). After each repository run
the ledger is checked: every event once, the rollups summing to the events. Run::

    .venv/bin/python bench/ledger_ingest.py --events 200000
    .venv/bin/python bench/ledger_ingest.py --events 100000 --database-url sqlite+aiosqlite:///x.db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.recorder import Recorder
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.models import SpendEventRow, SpendRollup

MODELS = [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("o3", "openai"), ("gpt-4.1", "azure")]
MODELS += [("claude-sonnet-4", "anthropic"), ("claude-haiku-4", "anthropic"), ("llama-3-70b", "groq")]
MODELS += [("qwen-2.5-72b", "together")]


def make_events(n: int, *, seed: int = 1, start: datetime | None = None) -> list[SpendEvent]:
    rng = random.Random(seed)
    t0 = start or datetime.now(UTC)
    tags = [f"tag-{i}" for i in range(10)]
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(n):
        model, provider = MODELS[rng.randrange(len(MODELS))]
        team = rng.randrange(20)
        inp, outp = rng.randrange(50, 8000), rng.randrange(1, 2000)
        latency = rng.randrange(100, 5000)
        occurred = t0 + timedelta(milliseconds=i)
        out.append(
            SpendEvent(
                event_id=f"req_{run}{i:012x}",  # the gateway's request-id format
                occurred_at=occurred,
                started_at=occurred - timedelta(milliseconds=latency),
                cost_nanos=inp * 150 + outp * 600,
                cost_items={"input": inp * 150, "output": outp * 600},
                usage=Usage(input_tokens=inp, output_tokens=outp, cache_read_tokens=inp // 4),
                api_key=f"{rng.randrange(50):064x}",
                user_id=f"user-{rng.randrange(100)}",
                team_id=f"team-{team}",
                organization_id=f"org-{team % 5}",
                end_user=f"customer-{rng.randrange(200)}",
                tags=tuple(rng.sample(tags, rng.randrange(3))),
                requested_model=model,
                model=model,
                provider=provider,
                deployment_id=f"{provider}-{rng.randrange(2)}",
                endpoint="/v1/chat/completions",
                operation_id=f"req_{run}{i:012x}",  # the gateway sets it to the request id
                catalogue_version="2026-11-01",
                price_source="bundled",
                latency_ms=latency,
                overhead_ms=rng.randrange(1, 5),
            )
        )
    return out


async def fresh_database(url: str) -> tuple[str, str]:
    """A new database for the run: a PostgreSQL database or a SQLite file in /tmp. Returns
    its URL and what :func:`drop_database` needs to remove it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        directory = tempfile.mkdtemp(prefix="spendgate-bench-")
        return f"sqlite+aiosqlite:///{os.path.join(directory, 'bench.db')}", directory
    name = f"spendgate_bench_{os.getpid()}"
    conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False), name


async def drop_database(url: str, name: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        shutil.rmtree(name, ignore_errors=True)
        return
    conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def bench_repository(url: str, events: list[SpendEvent], batch: int, writers: int = 1) -> float:
    engine = create_engine(url)
    await upgrade(engine)
    repo = LedgerRepository(engine)
    await repo.write_batch(events[:batch])  # warm up: partitions, temp tables, prepared statements
    batches = [events[i : i + batch] for i in range(batch, len(events), batch)]

    async def writer(k: int) -> None:
        for chunk in batches[k::writers]:
            await repo.write_batch(chunk)

    started = time.perf_counter()
    await asyncio.gather(*(writer(k) for k in range(writers)))
    elapsed = time.perf_counter() - started
    await check_ledger(engine, events)
    await engine.dispose()
    return (len(events) - batch) / elapsed


async def check_ledger(engine: AsyncEngine, events: list[SpendEvent]) -> None:
    """Every event is in the ledger once, and the rollups add up to the events."""
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(SpendEventRow))).scalar_one()
        for grain, scope in ((900, "global"), (3600, "team"), (3600, "customer")):
            requests, cost = (
                await conn.execute(
                    select(func.sum(SpendRollup.requests), func.sum(SpendRollup.cost_nanos)).where(
                        SpendRollup.grain == grain, SpendRollup.scope_type == scope
                    )
                )
            ).one()
            assert (int(requests), int(cost)) == (len(events), sum(e.cost_nanos for e in events)), scope
    assert count == len(events), count


async def bench_recorder(url: str, events: list[SpendEvent], batch: int) -> tuple[float, float, float]:
    engine = create_engine(url)
    await upgrade(engine)
    journal = tempfile.mkdtemp(prefix="spendgate-journal-")
    recorder = Recorder(engine, journal, batch_size=batch, max_queue=4 * batch)
    await recorder.start()
    started = time.perf_counter()
    record_time = 0.0
    for event in events:
        while True:
            try:
                t = time.perf_counter()
                recorder.record(event)
                record_time += time.perf_counter() - t
                break
            except Exception:
                await asyncio.sleep(0.001)  # back-pressure: let the writer catch up
        if recorder.stats.queue_depth % 500 == 0:
            await asyncio.sleep(0)
    await recorder.flush()
    elapsed = time.perf_counter() - started
    stats = recorder.stats
    await recorder.close()
    await engine.dispose()
    shutil.rmtree(journal, ignore_errors=True)
    assert stats.written == len(events), stats
    return len(events) / elapsed, record_time / len(events) * 1e6, stats.max_flush_ms


def load() -> str:
    """The 1-minute load average (the machine is shared: say how busy it was)."""
    return f"{os.getloadavg()[0]:.2f}"


def summary(label: str, rates: list[float]) -> None:
    print(
        f"{label}: median {statistics.median(rates):,.0f} events/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}, {len(rates)} runs)",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=1, help="concurrent write_batch callers")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--only", choices=["repository", "recorder"], help="run one measurement")
    args = parser.parse_args()

    print(f"generating {args.events:,} events …", flush=True)
    events = make_events(args.events)
    if args.only != "recorder":
        rates = []
        for _ in range(args.rounds):
            rates.append(await run_repository(args, events))
        summary(f"repository.write_batch ({args.batch:,}/batch, {args.writers} caller(s))", rates)
    if args.only != "repository":
        rates = []
        for i in range(args.rounds):
            rates.append(await run_recorder(args, seed=2 + i))
        summary("recorder end to end", rates)


async def run_repository(args: argparse.Namespace, events: list[SpendEvent]) -> float:
    url, name = await fresh_database(args.database_url)
    try:
        before = load()
        rate = await bench_repository(url, events, args.batch, args.writers)
        print(f"  repository.write_batch: {rate:,.0f} events/s (load {before} → {load()})", flush=True)
        return rate
    finally:
        await drop_database(args.database_url, name)


async def run_recorder(args: argparse.Namespace, seed: int) -> float:
    url, name = await fresh_database(args.database_url)
    try:
        before = load()
        events = make_events(args.events, seed=seed)
        rate, per_record_us, max_flush = await bench_recorder(url, events, args.batch)
        print(
            f"  recorder end to end: {rate:,.0f} events/s (record() {per_record_us:.1f} µs/event; "
            f"slowest flush {max_flush:.0f} ms; load {before} → {load()})",
            flush=True,
        )
        return rate
    finally:
        await drop_database(args.database_url, name)


if __name__ == "__main__":
    asyncio.run(main())
