"""Sustained ingest into the ledger (PostgreSQL or SQLite).

Two measurements, each on a fresh database migrated with ``alembic upgrade head``:

* ``repository``: ``LedgerRepository.write_batch`` called back to back with batches of
  ``--batch`` events — the database path alone (COPY / multi-row INSERT, ON CONFLICT,
  RETURNING, rollups at 3 grains × 7 scope types in the same transaction);
* ``recorder``: events go through ``Recorder.record`` (JSON journal line + queue) as fast
  as the recorder accepts them, and the clock stops when the last one is in the
  database — what a gateway process can sustain end to end.

Events have realistic attribution cardinality (keys, users, teams, orgs, customers,
0–2 tags, models, providers). Run::

    .venv/bin/python bench/ledger_ingest.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/ledger_ingest.py --database-url sqlite+aiosqlite:///bench.db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.recorder import Recorder
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine, upgrade

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
        out.append(
            SpendEvent(
                event_id=f"bench-{run}-{i}",
                occurred_at=t0 + timedelta(milliseconds=i),
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
                catalogue_version="2026-11-01",
                price_source="bundled",
                latency_ms=rng.randrange(100, 5000),
                overhead_ms=rng.randrange(1, 5),
            )
        )
    return out


async def fresh_database(url: str) -> tuple[str, str | None]:
    """A new database for the run: a PostgreSQL database or a SQLite file in /tmp."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = os.path.join(tempfile.mkdtemp(prefix="spendgate-bench-"), "bench.db")
        return f"sqlite+aiosqlite:///{path}", None
    name = f"spendgate_bench_{os.getpid()}"
    conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False), name


async def drop_database(url: str, name: str | None) -> None:
    if name is None:
        return
    parsed = make_url(url)
    conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def bench_repository(url: str, events: list[SpendEvent], batch: int) -> float:
    engine = create_engine(url)
    await upgrade(engine)
    repo = LedgerRepository(engine)
    await repo.write_batch(events[:batch])  # warm up: partitions, temp tables, prepared statements
    started = time.perf_counter()
    for i in range(batch, len(events), batch):
        await repo.write_batch(events[i : i + batch])
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return (len(events) - batch) / elapsed


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


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    print(f"generating {args.events:,} events …", flush=True)
    events = make_events(args.events)
    url, name = await fresh_database(args.database_url)
    try:
        rate = await bench_repository(url, events, args.batch)
        print(f"repository.write_batch ({args.batch}/batch): {rate:,.0f} events/s")
    finally:
        await drop_database(args.database_url, name)
    url, name = await fresh_database(args.database_url)
    try:
        rate, per_record_us, max_flush = await bench_recorder(
            url, make_events(args.events, seed=2), args.batch
        )
        print(
            f"recorder end to end: {rate:,.0f} events/s "
            f"(record() {per_record_us:.1f} µs/event; slowest flush {max_flush:.0f} ms)"
        )
    finally:
        await drop_database(args.database_url, name)


if __name__ == "__main__":
    asyncio.run(main())
