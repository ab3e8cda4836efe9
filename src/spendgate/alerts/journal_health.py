"""``journal_backlog`` and ``events_dead_lettered``: the spend recorder of this process is
falling behind, or the database refused events for good.

Each gateway process has its own recorder and journal, so :class:`JournalMonitor` runs in
every process (a job without the leader lock) and reads the recorder's counters; nothing on
the request path. Both kinds are scoped to the journal (``host:journal directory``) and
alert at most once per UTC hour.

- **Backlog**: the queue holds ``max_events`` or more events, the journal ``max_bytes`` or
  more bytes not yet confirmed written, or the recorder has held events for
  ``stalled_seconds`` without one successful write (the database refusing connections, or
  too slow). The alert says which, with the figures and the recorder's last error.
- **Dead letters**: events refused for good since the last such alert (they are in
  ``dead-letter.jsonl`` in the journal directory); each is counted in one alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from spendgate.alerts.model import Alert, AlertKind
from spendgate.alerts.operational import OperationalAlerts, hour_of, when

__all__ = ["JournalMonitor", "RecorderCounters"]


class RecorderCounters(Protocol):
    """What the monitor reads of the recorder's stats (``spendgate.ledger.RecorderStats``)."""

    @property
    def queue_depth(self) -> int: ...
    @property
    def journal_bytes(self) -> int: ...
    @property
    def flushes(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...


class JournalMonitor:
    """Watches one recorder (see the module docstring).

    Args:
        alerts: records the alerts.
        stats: the recorder's current counters.
        journal: names the journal in the alerts (``host:directory``).
        max_events: queue depth that counts as a backlog.
        max_bytes: unconfirmed journal bytes that count as a backlog.
        stalled_seconds: how long events may wait without a successful write.
    """

    def __init__(
        self,
        alerts: OperationalAlerts,
        stats: Callable[[], RecorderCounters],
        journal: str,
        *,
        max_events: int = 50_000,
        max_bytes: int = 256 << 20,
        stalled_seconds: float = 300.0,
    ) -> None:
        self.alerts = alerts
        self.stats = stats
        self.journal = journal[:255]
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.stalled_seconds = stalled_seconds
        self._flushes: int | None = None
        self._stalled_since: datetime | None = None
        self._backlog_hour: datetime | None = None
        self._failed_seen = 0
        self._dead_since: datetime | None = None
        self._dead_hour: datetime | None = None

    async def run_once(self) -> None:
        """Read the counters once and alert what is due (raises when recording fails: the
        job logs it, and the next run tries again)."""
        stats = self.stats()
        now = self.alerts.clock()
        hour, _ = hour_of(now)
        progressed = self._flushes is not None and stats.flushes != self._flushes
        if stats.queue_depth == 0 or progressed:
            self._stalled_since = None
        elif self._stalled_since is None:
            self._stalled_since = now
        self._flushes = stats.flushes
        if stats.failed > self._failed_seen and self._dead_since is None:
            self._dead_since = now
        reasons = self._backlog(stats, now)
        if reasons and self._backlog_hour != hour:
            figures = {
                "queue_depth": stats.queue_depth,
                "journal_bytes": stats.journal_bytes,
                "stalled_since": None if self._stalled_since is None else self._stalled_since.isoformat(),
                "last_error": stats.last_error,
            }
            error = f" Last error: {stats.last_error}." if stats.last_error else ""
            text = f"the spend journal {self.journal} is backing up: {'; '.join(reasons)}.{error}"
            await self.alerts.record(self._alert("journal_backlog", text, now, figures))
            self._backlog_hour = hour
        new = stats.failed - self._failed_seen
        if new > 0 and self._dead_hour != hour:
            since = self._dead_since or now
            text = (
                f"{new} spend event{'s' if new != 1 else ''} refused for good by the database since "
                f"{when(since)} (journal {self.journal}); kept in dead-letter.jsonl there, NOT in the "
                f"ledger. Last error: {stats.last_error or 'unknown'}."
            )
            figures = {"dead_lettered": new, "since": since.isoformat(), "last_error": stats.last_error}
            await self.alerts.record(self._alert("events_dead_lettered", text, now, figures))
            self._dead_hour = hour
            self._failed_seen = stats.failed
            self._dead_since = None

    def _backlog(self, stats: RecorderCounters, now: datetime) -> list[str]:
        reasons = []
        if stats.queue_depth >= self.max_events:
            reasons.append(f"{stats.queue_depth} events waiting (threshold {self.max_events})")
        if stats.journal_bytes >= self.max_bytes:
            reasons.append(
                f"{stats.journal_bytes} journal bytes not yet in the ledger (threshold {self.max_bytes})"
            )
        since = self._stalled_since
        if since is not None and (now - since).total_seconds() >= self.stalled_seconds:
            reasons.append(f"{stats.queue_depth} events waiting with no successful write since {when(since)}")
        return reasons

    def _alert(self, kind: AlertKind, text: str, now: datetime, figures: Mapping[str, object]) -> Alert:
        start, end = hour_of(now)
        return Alert(
            kind=kind,
            scope_type="journal",
            scope_id=self.journal,
            message=text,
            window="1h",
            period_start=start,
            period_end=end,
            extra={"instance": self.alerts.instance_id, **figures},
        )
