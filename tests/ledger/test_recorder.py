from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from ledger_helpers import TcpProxy, count_events, make_event, rollup_totals
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.ledger.journal import JournalFullError
from spendgate.ledger.recorder import Recorder, RecorderFullError
from spendgate.stores.database import create_engine

pytestmark = pytest.mark.asyncio
CHILD = Path(__file__).with_name("recorder_child.py")


async def test_records_flush_in_batches_and_close_drains(engine: AsyncEngine, journal_dir: Path) -> None:
    recorder = Recorder(engine, journal_dir, batch_size=50)
    await recorder.start()
    for i in range(120):
        recorder.record(make_event(i))
    await recorder.record_durable(make_event(120))
    await recorder.flush(timeout=10)
    assert await count_events(engine) == 121
    recorder.record(make_event(500))
    await recorder.close()
    stats = recorder.stats
    assert (stats.written, stats.queue_depth, stats.failed) == (122, 0, 0)
    assert stats.flushes >= 3 and stats.last_flush_ms > 0
    assert not list(journal_dir.glob("segment-*.log"))  # everything confirmed


async def test_flush_happens_within_the_interval(engine: AsyncEngine, journal_dir: Path) -> None:
    async with Recorder(engine, journal_dir, flush_interval=0.25) as recorder:
        recorder.record(make_event(1))
        await asyncio.sleep(0.8)
        assert await count_events(engine) == 1


def _run_child(url: str, journal: Path, n: int, prefix: str, flush_interval: float) -> None:
    """Start a recorder subprocess, wait for its ACK, then SIGKILL it."""
    with subprocess.Popen(
        [sys.executable, str(CHILD), url, str(journal), str(n), prefix, str(flush_interval)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if line.strip() != f"ACK {n}".encode():
            proc.kill()
            pytest.fail(f"recorder child did not acknowledge: {line!r} {proc.stderr.read()!r}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("flush_interval", [0.01, 60.0], ids=["mid-flush", "nothing-flushed"])
async def test_sigkill_after_ack_loses_nothing_and_counts_nothing_twice(
    engine: AsyncEngine, database_url: str, journal_dir: Path, flush_interval: float
) -> None:
    n = 3000
    await asyncio.to_thread(_run_child, database_url, journal_dir, n, "k", flush_interval)
    before = await count_events(engine)
    assert before <= n
    async with Recorder(engine, journal_dir) as recorder:
        await recorder.flush(timeout=30)
        stats = recorder.stats
    assert stats.replayed >= n - before  # whatever the database did not have was journaled
    assert await count_events(engine) == n
    assert await rollup_totals(engine, 3600) == (n, n * 1_000)
    assert await rollup_totals(engine, 900, "team") == (n, n * 1_000)
    # A second kill, on top of the first run's data, still adds exactly n.
    await asyncio.to_thread(_run_child, database_url, journal_dir, n, "k2", flush_interval)
    async with Recorder(engine, journal_dir) as recorder:
        await recorder.flush(timeout=30)
    assert await count_events(engine) == 2 * n
    assert await rollup_totals(engine, 3600) == (2 * n, 2 * n * 1_000)


@asynccontextmanager
async def _sqlite_locked(url: str) -> AsyncIterator[Callable[[], None]]:
    """Hold an exclusive lock on the SQLite file: every writer gets 'database is locked'."""
    path = make_url(url).database
    assert path
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("BEGIN EXCLUSIVE")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            conn.execute("COMMIT")
            released = True

    try:
        yield release
    finally:
        release()
        conn.close()


async def test_database_outage_loses_nothing(
    database_url: str, engine: AsyncEngine, journal_dir: Path
) -> None:
    n = 400
    if engine.dialect.name == "postgresql":
        target = make_url(database_url)
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
        await proxy.start()
        proxied = create_engine(target.set(host="127.0.0.1", port=proxy.port))
        recorder = Recorder(proxied, journal_dir, flush_interval=0.05, retry_max=0.2)
        await recorder.start()
        recorder.record(make_event(-1))
        await recorder.flush(timeout=10)
        await proxy.stop()  # refuse connections, cut the pooled ones
        for i in range(n):
            recorder.record(make_event(i))
        await asyncio.sleep(1.5)
        assert recorder.stats.flush_errors > 0
        assert recorder.stats.queue_depth == n
        await proxy.start()  # the database is back
        await recorder.flush(timeout=30)
        await recorder.close()
        await proxied.dispose()
        await proxy.stop()
    else:
        writer = create_engine(database_url, sqlite_busy_timeout_ms=20)
        recorder = Recorder(writer, journal_dir, flush_interval=0.05, retry_max=0.2)
        await recorder.start()
        async with _sqlite_locked(database_url) as release:
            for i in range(n):
                recorder.record(make_event(i))
            await asyncio.sleep(1.5)
            assert recorder.stats.flush_errors > 0
            assert recorder.stats.queue_depth == n
            release()
            await recorder.flush(timeout=30)
        await recorder.close()
        await writer.dispose()
    stats = recorder.stats
    assert stats.failed == 0 and stats.queue_depth == 0
    assert await count_events(engine) == n + (1 if engine.dialect.name == "postgresql" else 0)


async def test_full_journal_is_backpressure(journal_dir: Path) -> None:
    down = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")  # nothing listens on port 1
    recorder = Recorder(down, journal_dir, max_journal_bytes=20_000, retry_max=0.1)
    await recorder.start()
    recorded = 0
    with pytest.raises(JournalFullError, match="NOT recorded"):
        for i in range(1000):
            recorder.record(make_event(i))
            recorded += 1
    assert 0 < recorded < 1000
    await recorder.close(timeout=0.2)  # the database never came back: events stay journaled
    await down.dispose()
    reopened = Recorder(down, journal_dir)
    await reopened.start()
    assert reopened.stats.replayed == recorded
    await reopened.close(timeout=0.1)
    await down.dispose()


async def test_full_queue_is_backpressure(journal_dir: Path) -> None:
    down = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    recorder = Recorder(down, journal_dir, max_queue=10, retry_max=0.1)
    await recorder.start()
    for i in range(10):
        recorder.record(make_event(i))
    with pytest.raises(RecorderFullError, match="NOT recorded"):
        recorder.record(make_event(11))
    await recorder.close(timeout=0.1)
    await down.dispose()


@pytest.mark.postgres
async def test_refused_event_is_dead_lettered_not_blocking(postgres_url: str, journal_dir: Path) -> None:
    from db_helpers import clear_database

    engine = create_engine(postgres_url)
    await clear_database(engine)
    async with Recorder(engine, journal_dir) as recorder:
        recorder.record(make_event(1))
        recorder.record(make_event(2, provider="x" * 100))  # longer than the column: a DataError
        recorder.record(make_event(3))
        await recorder.flush(timeout=10)
    assert recorder.stats.failed == 1
    assert await count_events(engine) == 2
    assert b"x" * 100 in (journal_dir / "dead-letter.jsonl").read_bytes()
    await engine.dispose()
