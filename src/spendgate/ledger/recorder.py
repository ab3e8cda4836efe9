"""The write-behind recorder: nothing on the request path waits for SQL.

:meth:`Recorder.record` appends the event to the local journal and to a bounded
in-memory queue, and returns: that is the acknowledgement. From then on the event is not
lost:

* a background writer inserts the queue in batches (at least every ``flush_interval``,
  250 ms by default, sooner when a batch is full) through
  :class:`~spendgate.ledger.repository.LedgerRepository`, idempotently;
* the journal is fsynced in groups every ``fsync_interval``; the process dying (kill -9)
  after ``record`` returned loses nothing, because the write already reached the OS,
  and :meth:`record_durable` also waits for the fsync (OS crash, power loss);
* at :meth:`start`, whatever a previous process journaled but did not confirm is
  replayed; events already in the database are ignored, so nothing counts twice;
* a database error keeps the batch and retries with exponential backoff; the journal
  buffers the outage and the queue drains when the database returns;
* when the queue (``max_queue`` events) or the journal (``max_journal_bytes``) is full,
  ``record`` raises :class:`RecorderFullError` / :class:`JournalFullError`: back-pressure
  with a clear error, never a silent drop;
* an event the database refuses for good (e.g. a value too long) is isolated from its
  batch and written to ``dead-letter.jsonl`` in the journal directory, logged and
  counted in ``stats.failed``; it never blocks the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.ledger.events import SpendEvent
from spendgate.ledger.journal import Journal, JournalError, JournalFullError
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.partitions import ensure_partitions_ahead

__all__ = ["JournalFullError", "Recorder", "RecorderFullError", "RecorderStats"]

log = logging.getLogger("spendgate.ledger")


class RecorderFullError(JournalError):
    """Back-pressure: ``max_queue`` events are waiting for the database. Not recorded."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    queue_depth: int
    journal_bytes: int
    written: int
    """Events inserted by this process."""
    duplicates: int
    """Events the database already had (replays, retries)."""
    replayed: int
    """Events found in the journal at start."""
    failed: int
    """Events the database refused for good (in ``dead-letter.jsonl``)."""
    flush_errors: int
    """Batches that failed and were retried."""
    flushes: int
    last_flush_ms: float
    max_flush_ms: float
    last_error: str | None


def _permanent(exc: BaseException) -> bool:
    """True for errors that retrying the same rows cannot fix."""
    # COPY goes through asyncpg directly, so its errors arrive unwrapped.
    if isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return False
        return isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError)
    return isinstance(exc, TypeError | ValueError | KeyError)


class Recorder:
    """Durable, bounded, write-behind recording of spend events (see module doc)."""

    def __init__(
        self,
        engine: AsyncEngine,
        journal_dir: str | os.PathLike[str],
        *,
        max_queue: int = 200_000,
        max_journal_bytes: int = 1 << 30,
        batch_size: int = 10_000,
        flush_interval: float = 0.25,
        fsync_interval: float = 0.01,
        retry_max: float = 5.0,
        writers: int | None = None,
    ) -> None:
        self.repository = LedgerRepository(engine)
        self.journal = Journal(journal_dir, max_bytes=max_journal_bytes)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.fsync_interval = fsync_interval
        self.retry_max = retry_max
        # PostgreSQL takes batches in parallel (the next one is built while the last one is
        # written); SQLite has one writer anyway.
        self.writers = writers if writers is not None else (2 if self.repository.postgres else 1)
        if self.writers < 1:
            raise ValueError("a recorder needs at least one writer")
        self._queue: deque[tuple[int, SpendEvent]] = deque()
        self._record_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._started = False
        self._synced_seq = 0
        self._sync_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._written = self._duplicates = self._replayed = self._failed = 0
        self._flush_errors = self._flushes = 0
        self._last_ms = self._max_ms = 0.0
        self._last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal, queue what a previous run left unconfirmed, start writing."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        records = self.journal.open()
        for seq, payload in records:
            try:
                self._queue.append((seq, SpendEvent.from_json(payload)))
            except (ValueError, TypeError, KeyError) as exc:
                self._dead_letter(payload, f"unreadable journal record: {exc!r}")
        self._replayed = len(records)
        self._synced_seq = self.journal.last_seq
        if records:
            log.info("spend journal: replaying %d events not confirmed by the previous run", len(records))
        if self.repository.postgres:
            try:
                await asyncio.wait_for(ensure_partitions_ahead(self.repository.engine, datetime.now(UTC)), 5)
            except Exception as exc:  # the database may be down; the writer creates them later
                log.warning("spend recorder: could not create partitions ahead: %s", exc)
        self._started = True
        self._tasks = [
            asyncio.create_task(self._writer(), name="spendgate-ledger-writer"),
            asyncio.create_task(self._syncer(), name="spendgate-ledger-fsync"),
        ]

    async def close(self, timeout: float | None = 30.0) -> None:
        """Stop accepting events and flush the queue (up to ``timeout`` seconds).

        Events still unwritten after the timeout (the database is down) stay in the
        journal and are replayed at the next start.
        """
        if not self._started:
            return
        self._closing = True
        self._wake.set()
        writer, syncer = self._tasks
        try:
            await asyncio.wait_for(asyncio.shield(writer), timeout)
        except TimeoutError:
            log.warning("spend recorder: %d events left in the journal for the next start", len(self._queue))
            writer.cancel()
        syncer.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.journal.close()
        for _, fut in self._sync_waiters:
            if not fut.done():
                fut.set_result(None)
        self._started = False

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- recording ---------------------------------------------------------------------

    def record(self, event: SpendEvent) -> int:
        """Journal and queue ``event``; returns its journal sequence number.

        Once this returns, the event is acknowledged: it will reach the database even if
        the process is killed now.

        Raises:
            RecorderFullError, JournalFullError: back-pressure; the event was not recorded.
        """
        if not self._started or self._closing:
            raise JournalError("the spend recorder is not running")
        if len(self._queue) >= self.max_queue:
            raise RecorderFullError(
                f"spend recorder queue is full ({len(self._queue)} events waiting for the database); "
                "the event was NOT recorded"
            )
        payload = event.to_json()
        with self._record_lock:  # journal order == queue order, even across threads
            seq = self.journal.append(payload)
            self._queue.append((seq, event))
        if len(self._queue) >= self.batch_size:
            self._notify()
        return seq

    async def record_durable(self, event: SpendEvent) -> None:
        """:meth:`record`, then wait until the journal is fsynced past the event."""
        seq = self.record(event)
        if seq <= self._synced_seq:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((seq, fut))
        await fut

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event recorded so far is in the database."""
        target = self.journal.last_seq
        deadline = None if timeout is None else time.monotonic() + timeout
        self._notify()
        while self._queue and self._queue[0][0] <= target:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._queue)} spend events are still waiting for the database")
            await asyncio.sleep(0.01)

    @property
    def stats(self) -> RecorderStats:
        return RecorderStats(
            queue_depth=len(self._queue),
            journal_bytes=self.journal.size,
            written=self._written,
            duplicates=self._duplicates,
            replayed=self._replayed,
            failed=self._failed,
            flush_errors=self._flush_errors,
            flushes=self._flushes,
            last_flush_ms=self._last_ms,
            max_flush_ms=self._max_ms,
            last_error=self._last_error,
        )

    # -- background tasks ---------------------------------------------------------------

    def _notify(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _writer(self) -> None:
        """Write the queue in batches, up to ``writers`` batches in flight.

        Batches are taken from the head of the queue in order; a batch leaves the queue
        (and the journal is confirmed past it) only once it and every batch before it are
        written. After a transient failure the writer waits for the batches still in
        flight, then retries from the head: rewriting what already reached the database
        only finds duplicates.
        """
        backoff = 0.05
        inflight: deque[tuple[list[tuple[int, SpendEvent]], asyncio.Task[tuple[int, int, float]]]] = deque()
        claimed = 0  # events at the head of the queue held by batches in flight
        try:
            while True:
                failed: BaseException | None = None
                while inflight and inflight[0][1].done():
                    batch, task = inflight.popleft()
                    claimed -= len(batch)
                    failed = task.exception()
                    if failed is not None:
                        break
                    inserted, duplicates, elapsed = task.result()
                    for _ in batch:
                        self._queue.popleft()
                    self.journal.confirm(batch[-1][0])
                    self._account(inserted, duplicates, elapsed)
                    backoff = 0.05
                if failed is not None:
                    for _, task in inflight:  # let them finish; their events are retried
                        with contextlib.suppress(Exception):
                            self._account(*(await task))
                    inflight.clear()
                    claimed = 0
                    self._flush_errors += 1
                    self._last_error = f"{type(failed).__name__}: {failed}"[:500]
                    log.warning(
                        "spend recorder: database write failed, retrying in %.2fs: %s", backoff, failed
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.retry_max)
                    continue
                unclaimed = len(self._queue) - claimed
                if not inflight:
                    if not unclaimed:
                        if self._closing:
                            return
                        await self._sleep(self.flush_interval)
                        continue
                    if unclaimed < self.batch_size and not self._closing:
                        # Gather a batch for at most one flush interval from its first event.
                        await self._sleep(self.flush_interval)
                        unclaimed = len(self._queue) - claimed
                elif (
                    len(inflight) >= self.writers
                    or not unclaimed
                    or (unclaimed < self.batch_size and not self._closing)
                ):
                    await asyncio.wait([task for _, task in inflight], return_when=asyncio.FIRST_COMPLETED)
                    continue
                if not unclaimed:
                    continue
                batch = [self._queue[claimed + i] for i in range(min(self.batch_size, unclaimed))]
                claimed += len(batch)
                inflight.append((batch, asyncio.create_task(self._write(batch))))
        finally:
            for _, task in inflight:
                task.cancel()

    async def _write(self, batch: list[tuple[int, SpendEvent]]) -> tuple[int, int, float]:
        """Write one batch: (inserted, duplicates, milliseconds)."""
        started = time.perf_counter()
        try:
            result = await self.repository.write_batch([event for _, event in batch])
            inserted, duplicates = result.inserted, result.duplicates
        except Exception as exc:
            if not _permanent(exc):
                raise
            inserted, duplicates = await self._isolate(batch)
        return inserted, duplicates, (time.perf_counter() - started) * 1000

    def _account(self, inserted: int, duplicates: int, elapsed_ms: float) -> None:
        self._written += inserted
        self._duplicates += duplicates
        self._flushes += 1
        self._last_ms = elapsed_ms
        self._max_ms = max(self._max_ms, elapsed_ms)

    async def _isolate(self, batch: list[tuple[int, SpendEvent]]) -> tuple[int, int]:
        """Write a batch that failed permanently event by event; dead-letter the bad ones.

        Transient errors here propagate after a pause, so the whole batch is retried
        (already-written events are then ignored as duplicates).
        """
        inserted = duplicates = 0
        for _, event in batch:
            try:
                result = await self.repository.write_batch([event])
            except Exception as exc:
                if not _permanent(exc):
                    raise
                self._dead_letter(event.to_json(), f"{type(exc).__name__}: {exc}")
                continue
            inserted += result.inserted
            duplicates += result.duplicates
        return inserted, duplicates

    def _dead_letter(self, payload: bytes, reason: str) -> None:
        self._failed += 1
        self._last_error = reason[:500]
        path = Path(self.journal.directory) / "dead-letter.jsonl"
        with open(path, "ab") as fh:
            fh.write(payload + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.error("spend recorder: the database refused an event for good; kept in %s: %s", path, reason)

    async def _syncer(self) -> None:
        while True:
            await asyncio.sleep(self.fsync_interval)
            if self.journal.last_seq > self._synced_seq or self._sync_waiters:
                self._synced_seq = await asyncio.to_thread(self.journal.sync)
                remaining = []
                for seq, fut in self._sync_waiters:
                    if seq <= self._synced_seq:
                        if not fut.done():
                            fut.set_result(None)
                    else:
                        remaining.append((seq, fut))
                self._sync_waiters = remaining
