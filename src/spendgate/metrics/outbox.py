"""``spendgate_alert_outbox_pending``: alert deliveries waiting in the outbox, read when scraped.

The outbox is shared by every instance and drained by whichever one leads the sender job,
so its size is not a per-process value: a gauge set by the leader would go stale on the
others (and on it, once the lead moves). Instead each scrape counts the pending rows (one
indexed ``COUNT``), bounded by a timeout; when the database does not answer the series is
dropped (never a stale or made-up value) and one warning is logged until it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["OutboxCollector"]

log = logging.getLogger("spendgate.metrics")


class OutboxCollector(Collector):
    """Serves the pending count of the last :meth:`refresh` (none when it failed).

    Args:
        read: counts the outbox's pending rows.
        timeout: seconds a scrape waits for it.
    """

    def __init__(self, read: Callable[[], Awaitable[int]], timeout: float = 5.0) -> None:
        self.read = read
        self.timeout = timeout
        self.pending: int | None = None
        self._failing = False

    async def refresh(self) -> None:
        """Count again (called by the exporter before each scrape)."""
        try:
            self.pending = await asyncio.wait_for(self.read(), self.timeout)
        except Exception as exc:  # TimeoutError included
            self.pending = None
            if not self._failing:
                self._failing = True
                log.warning("alert outbox metric unavailable, its series is dropped: %s", type(exc).__name__)
            return
        if self._failing:
            self._failing = False
            log.warning("alert outbox metric available again")

    def describe(self) -> list[Metric]:
        return []  # registering must not collect

    def collect(self) -> Iterator[Metric]:
        if self.pending is None:
            return
        yield GaugeMetricFamily(
            "spendgate_alert_outbox_pending",
            "Alert deliveries waiting in the outbox (pending rows, due now or later)",
            value=self.pending,
        )
