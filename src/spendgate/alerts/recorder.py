"""Alerts decided on the request path, written off it.

The request path (a settle that reached a budget threshold) calls :meth:`AlertRecorder.put`,
which only appends to a bounded queue. A task on each instance drains the queue: it names
the scope (:func:`spendgate.alerts.budget.describe`) and writes each alert with
:func:`~spendgate.alerts.store.record_alert` (the unique decision row and its outbox rows,
one transaction per batch). Every instance that saw a crossing writes it; the unique row
makes it one alert.

Nothing is lost for good: an alert that could not be queued (full) or written (the database
down) has its ``retry`` callback called, which makes the detector report the crossing again
on the next settle of that window (see :mod:`spendgate.enforcement.crossings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spendgate.alerts.budget import describe
from spendgate.alerts.model import ALERT_GROUPS, Alert
from spendgate.alerts.settings import AlertRouting
from spendgate.alerts.store import record_alert

__all__ = ["AlertRecorder", "Retry"]

log = logging.getLogger("spendgate.alerts")

Retry = Callable[[], None]
"""Called when an alert was not written: its detector reports it again later."""

_BATCH = 100


class AlertRecorder:
    """A bounded queue of alerts and the task that writes them.

    Args:
        sessions: database sessions.
        routing: the channels each kind goes to (an alert is recorded even with none, so
            ``spendgate alerts list`` and the dashboard show it).
        capacity: alerts queued at most; past it, :meth:`put` drops and calls ``retry``.
        clock: the decision time (tests inject one).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        routing: AlertRouting,
        *,
        capacity: int = 10_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.routing = routing
        self.clock = clock
        self._queue: asyncio.Queue[tuple[Alert, Retry | None]] = asyncio.Queue(capacity)
        self._task: asyncio.Task[None] | None = None
        self.recorded = 0
        """Alerts this instance created (the others were already decided)."""
        self.failed = 0

    def put(self, items: Iterable[tuple[Alert, Retry | None]]) -> None:
        """Queue alerts to write; never blocks (the request path calls it)."""
        for item in items:
            try:
                self._queue.put_nowait(item)
            except asyncio.QueueFull:
                self.failed += 1
                if item[1] is not None:
                    item[1]()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="spendgate-alert-recorder")

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what is queued (within ``timeout``), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def flush(self) -> None:
        """Wait until every queued alert was written or given up (tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < _BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:
                self.failed += len(batch)
                log.warning("could not record %d alert(s); they are retried later", len(batch), exc_info=True)
                for _, retry in batch:
                    if retry is not None:
                        retry()
                await asyncio.sleep(1.0)  # the database is likely down: don't spin
            finally:
                for _ in batch:
                    queue.task_done()

    async def _write(self, batch: list[tuple[Alert, Retry | None]]) -> None:
        now = self.clock()
        async with self.sessions.begin() as session:
            for alert, _ in batch:
                if ALERT_GROUPS.get(alert.kind) == "budget_alerts":
                    alert = await describe(session, alert)
                if await record_alert(session, alert, self.routing.channels_for(alert.kind), now):
                    self.recorded += 1
