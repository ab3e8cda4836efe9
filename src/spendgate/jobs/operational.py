"""The jobs of the operational alerts (docs/alerts.md, "Operational alerts").

:func:`operational_jobs` builds them for ``server`` when an alert channel is configured:

- ``storage-health`` (every instance, no leader lock: the lock lives in the stores it
  checks) — :class:`~spendgate.alerts.storage_health.StorageMonitor`;
- ``journal-health`` (every instance: each process has its own recorder) —
  :class:`~spendgate.alerts.journal_health.JournalMonitor`, when the recorder has counters;
- ``unpriced-usage`` (one instance) — :class:`~spendgate.alerts.unpriced.UnpricedScan`;
- ``alert-retention`` (one instance, hourly) — :func:`~spendgate.alerts.retention.prune_alerts`.

Every one runs every ``alerting_args.operational_check_interval_seconds`` except retention;
none touches the request path.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.alerts.journal_health import JournalMonitor
from spendgate.alerts.operational import OperationalAlerts
from spendgate.alerts.retention import prune_alerts
from spendgate.alerts.storage_health import DATABASE, Probe, StorageMonitor
from spendgate.alerts.unpriced import UnpricedScan
from spendgate.config import AlertingArgs
from spendgate.jobs.runner import Job

__all__ = ["RETENTION_INTERVAL", "operational_jobs"]

log = logging.getLogger("spendgate.alerts")

RETENTION_INTERVAL = 3600.0
"""Seconds between two retention runs."""


def _database_probe(engine: AsyncEngine) -> Probe:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return probe


def operational_jobs(
    alerts: OperationalAlerts,
    args: AlertingArgs,
    engine: AsyncEngine,
    *,
    redis_ping: Callable[[], Awaitable[Any]] | None,
    recorder: object,
) -> list[Job]:
    """The operational-alert jobs (module docstring).

    Args:
        alerts: records the alerts (its routing says which kinds are wanted).
        args: ``general_settings.alerting_args``.
        engine: the database (probed, and where alerts and the ledger live).
        redis_ping: a bounded Redis round trip (None: no Redis configured).
        recorder: the spend recorder; watched when it has ``stats`` and a ``journal``.
    """
    interval = args.operational_check_interval_seconds
    probes: dict[str, Probe] = {DATABASE: _database_probe(engine)}
    if redis_ping is not None:
        probes["redis"] = redis_ping
    storage = StorageMonitor(alerts, probes, after_seconds=args.storage_unreachable_after_seconds)
    scan = UnpricedScan(alerts)
    retention = timedelta(days=args.retention_days)

    async def prune() -> None:
        result = await prune_alerts(alerts.sessions, alerts.clock() - retention)
        if result.deliveries or result.outbox or result.alerts:
            log.info("alert retention (%d days): removed %s", args.retention_days, result)

    async def unpriced() -> None:
        await scan.run_once()

    jobs = [
        Job("storage-health", interval, storage.run_once, everywhere=True),
        Job("unpriced-usage", interval, unpriced),
        Job("alert-retention", RETENTION_INTERVAL, prune),
    ]
    journal = getattr(recorder, "journal", None)
    if hasattr(recorder, "stats") and journal is not None:
        monitor = JournalMonitor(
            alerts,
            lambda: recorder.stats,
            f"{socket.gethostname()}:{journal.directory}",
            max_events=args.journal_backlog_events,
            max_bytes=args.journal_backlog_bytes,
            stalled_seconds=args.journal_stalled_seconds,
        )
        jobs.append(Job("journal-health", interval, monitor.run_once, everywhere=True))
    return jobs
