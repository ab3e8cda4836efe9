"""``GET /metrics``: the Prometheus text format, one worker or many.

One worker: the process's own registry plus the budget collector. Several workers
(``spendgate serve --workers N``): prometheus-client's multiprocess mode, which ``serve``
turns on by setting ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory before the workers
start (:func:`prepare_multiprocess_dir`); a scrape, answered by any one worker, sums every
worker's files (counters and histograms add up; gauges by their ``multiprocess_mode``) and
adds the budget gauges, which are read from the shared counters by that worker alone.

The endpoint is open by default, like LiteLLM's (put it behind the network you scrape
from); ``litellm_settings.require_auth_for_metrics_endpoint: true`` asks for a key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response

from spendgate.metrics.budgets import BudgetCollector, BudgetReader
from spendgate.metrics.outbox import OutboxCollector
from spendgate.metrics.requests import RequestMetrics

__all__ = [
    "MULTIPROC_ENV",
    "MetricsExporter",
    "prepare_multiprocess_dir",
    "report_health",
    "sweep_dead_processes",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("spendgate.metrics")


class MetricsExporter:
    """Builds a scrape's answer.

    Args:
        metrics: this process's request metrics.
        budgets: the budget gauges' reader (None: no budget gauges, e.g. no enforcer).
        authorize: checks a scrape's credentials (raises to refuse); None: open.
        budget_timeout: seconds a scrape waits for the budget gauges' storage.
        outbox: the alert outbox's pending gauge (None: no alerting).
    """

    def __init__(
        self,
        metrics: RequestMetrics,
        budgets: BudgetReader | None = None,
        authorize: Callable[[Request], Awaitable[None]] | None = None,
        budget_timeout: float = 5.0,
        outbox: OutboxCollector | None = None,
    ) -> None:
        self.metrics = metrics
        self.budgets = budgets
        self.authorize = authorize
        self.budget_timeout = budget_timeout
        self.collector = BudgetCollector()
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        else:
            self.registry = metrics.registry
        if budgets is not None:
            self.registry.register(self.collector)
        self.outbox = outbox
        if outbox is not None:
            self.registry.register(outbox)

    async def scrape(self) -> bytes:
        """The exposition text (this process's pending observations flushed, budget gauges
        refreshed first)."""
        self.metrics.flush()
        if self.budgets is not None:
            await self._refresh_budgets(self.budgets)
        if self.outbox is not None:
            await self.outbox.refresh()
        # Reading every worker's files is file I/O: off the event loop.
        return await asyncio.to_thread(generate_latest, self.registry)

    async def _refresh_budgets(self, budgets: BudgetReader) -> None:
        # The database or Redis being down (or slow) must not take the whole endpoint with
        # it: every other metric is still served, the budget series are dropped rather than
        # shown stale (a stale "remaining" looks like a live one), and
        # spendgate_budget_metrics_stale says so. One log line when it starts failing and
        # one when it recovers, not a stack trace per scrape.
        try:
            await asyncio.wait_for(budgets.refresh(self.collector), self.budget_timeout)
        except Exception as exc:  # TimeoutError included
            if not self.collector.stale:
                log.warning(
                    "budget metrics unavailable, their series are dropped until the storage answers: %s",
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                )
            self.collector.clear()
            self.collector.stale = True
            return
        if self.collector.stale:
            log.warning("budget metrics available again")
        self.collector.stale = False

    async def endpoint(self, request: Request) -> Response:
        """The ``GET /metrics`` handler."""
        if self.authorize is not None:
            await self.authorize(request)
        return Response(await self.scrape(), media_type=CONTENT_TYPE_PLAIN_0_0_4)  # every Prometheus reads it


def prepare_multiprocess_dir() -> Callable[[], None]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before workers start.

    An operator's own directory is emptied of earlier runs' files (prometheus-client's
    instructions: stale files would be summed into this run); otherwise a new temporary
    directory is made. Returns the clean-up to run when the server stops (it removes the
    temporary directory, or empties the operator's).
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        _empty(path)
        return lambda: _empty(path)
    made = tempfile.mkdtemp(prefix="spendgate-metrics-")
    os.environ[MULTIPROC_ENV] = made

    def clean() -> None:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)

    return clean


def sweep_dead_processes(path: str | None = None) -> list[int]:
    """Mark dead every process whose live gauge files are in the multiprocess directory and
    which no longer exists.

    A worker that died or was killed (uvicorn's hung-worker kill, the OOM killer) leaves its
    ``livesum`` gauge files (requests in flight, queue depth …), and the scrape would add its
    last values forever: prometheus-client drops them only when told
    (:func:`~prometheus_client.multiprocess.mark_process_dead`). Its counters and histograms
    stay, as they should: what it counted happened. Each worker runs this when it starts and
    when it stops (:func:`report_health`). A pid reused by a live process is kept (its files
    stay until that process is gone too).

    Returns:
        The pids marked dead (none without a multiprocess directory).
    """
    directory = path or os.environ.get(MULTIPROC_ENV)
    if not directory:
        return []
    pids: set[int] = set()
    for file in Path(directory).glob("gauge_live*_*.db"):
        digits = file.stem.rsplit("_", 1)[1]
        if digits.isdigit():
            pids.add(int(digits))
    dead = [pid for pid in sorted(pids) if not _alive(pid)]
    for pid in dead:
        _mark_dead(pid, directory)
    return dead


def _mark_dead(pid: int, directory: str) -> None:
    try:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    except FileNotFoundError:  # another worker's sweep removed it first
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _empty(path: Path) -> None:
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)


async def report_health(
    metrics: RequestMetrics, read: Callable[[], tuple[int, int, int, int]], interval: float = 1.0
) -> None:
    """Every ``interval`` seconds until cancelled: flush this process's observations and set
    its health gauges.

    ``read`` returns (requests in flight, recorder queue depth, journal bytes, dead-lettered
    events). In multiprocess mode each worker writes its own values (summed while it lives),
    so this runs in every worker: whichever worker is scraped sees the others' counts at
    most ``interval`` seconds late. At its start and its end it drops dead workers' live
    gauges (:func:`sweep_dead_processes`), its own included at the end.
    """
    _sweep_safely()
    try:
        while True:
            try:
                metrics.flush()
                in_flight, queue_depth, journal_bytes, dead_lettered = read()
                metrics.health(
                    in_flight=in_flight,
                    queue_depth=queue_depth,
                    journal_bytes=journal_bytes,
                    dead_lettered=dead_lettered,
                )
            except Exception:  # metrics must never stop: log, and try again next time
                log.exception("could not update the metrics")
            await asyncio.sleep(interval)
    finally:
        metrics.flush()  # a stopping worker's last observations reach its files
        _sweep_safely(own=True)


def _sweep_safely(own: bool = False) -> None:
    try:
        directory = os.environ.get(MULTIPROC_ENV)
        if own and directory:
            _mark_dead(os.getpid(), directory)  # its in-flight / queue gauges end with it
        sweep_dead_processes()
    except OSError:  # a directory that went away must not stop a worker
        log.warning("could not sweep dead workers' metrics files", exc_info=True)
