"""Prometheus metrics (issue #15): what the gateway counts, and ``GET /metrics``.

* :mod:`~spendgate.metrics.labels` — bounded label values (:class:`LabelPolicy`);
* :mod:`~spendgate.metrics.requests` — counters and histograms the request path feeds
  with one call per request (:class:`RequestMetrics`), health and batch-job gauges;
* :mod:`~spendgate.metrics.budgets` — budget gauges computed when scraped
  (:class:`BudgetReader`, :class:`BudgetCollector`);
* :mod:`~spendgate.metrics.outbox` — the alert outbox's pending rows, counted when scraped
  (:class:`OutboxCollector`);
* :mod:`~spendgate.metrics.exposition` — the endpoint, one worker or many
  (:class:`MetricsExporter`, :func:`prepare_multiprocess_dir`).

Beside the ledger in the layers: the gateway and the server call it; it imports no gateway.
See ``docs/metrics.md``.
"""

from __future__ import annotations

from spendgate.metrics.budgets import BudgetCollector, BudgetReader, BudgetSample, RateSample
from spendgate.metrics.exposition import (
    MULTIPROC_ENV,
    MetricsExporter,
    prepare_multiprocess_dir,
    report_health,
    sweep_dead_processes,
)
from spendgate.metrics.labels import OTHER, LabelPolicy
from spendgate.metrics.outbox import OutboxCollector
from spendgate.metrics.requests import NANOS_PER_USD, RequestMetrics

__all__ = [
    "MULTIPROC_ENV",
    "NANOS_PER_USD",
    "OTHER",
    "BudgetCollector",
    "BudgetReader",
    "BudgetSample",
    "LabelPolicy",
    "MetricsExporter",
    "OutboxCollector",
    "RateSample",
    "RequestMetrics",
    "prepare_multiprocess_dir",
    "report_health",
    "sweep_dead_processes",
]
