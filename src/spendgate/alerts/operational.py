"""Operational alerts: the gateway itself needs attention (not a budget).

Each is decided once across instances like every alert (the unique row of
:func:`~spendgate.alerts.store.record_alert`); the period in its key says how often a
condition that goes on may alert again:

=========================  ==========================================  ===================
kind                       scope (type, id)                            period
=========================  ==========================================  ===================
``unpriced_usage``         ``deployment``/``model``, its name          the UTC day
``batch_failed``           ``batch``, the batch id                     the batch's life
``batch_stale``            ``batch``, the batch id                     the batch's life
``journal_backlog``        ``journal``, ``host:journal directory``     the UTC hour
``events_dead_lettered``   ``journal``, ``host:journal directory``     the UTC hour
``storage_unreachable``    ``storage``, ``database`` or ``redis``      the UTC hour
=========================  ==========================================  ===================

:class:`OperationalAlerts` records one (detectors call it from jobs, never from the request
path) to the channels that take its kind; an alert no channel takes is not recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spendgate.alerts.model import Alert, AlertKind
from spendgate.alerts.settings import AlertRouting
from spendgate.alerts.store import record_alert
from spendgate.stores.database.models import ManagedObject

__all__ = ["OperationalAlerts", "batch_alert", "day_of", "hour_of"]

log = logging.getLogger("spendgate.alerts")

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


def hour_of(at: datetime) -> tuple[datetime, datetime]:
    """The UTC hour ``at`` falls in: (start, end)."""
    start = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start, start + _HOUR


def day_of(at: datetime) -> tuple[datetime, datetime]:
    """The UTC day ``at`` falls in: (start, end)."""
    start = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + _DAY


def when(at: datetime) -> str:
    """A time as messages show it: ``2026-12-05 14:03:07 UTC``."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class OperationalAlerts:
    """Records operational alerts to the channels that take them.

    Args:
        sessions: opens a session on the alert tables' database.
        routing: the configured channels (``routing_from_config``).
        instance_id: this process (``host:pid``), named in the alerts it records.
        clock: the decision time (tests move it).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        routing: AlertRouting,
        *,
        instance_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.routing = routing
        self.instance_id = instance_id
        self.clock = clock

    def wanted(self, kind: AlertKind) -> bool:
        """Whether any channel takes ``kind`` (a detector can skip its work otherwise)."""
        return bool(self.routing.channels_for(kind))

    async def record(self, alert: Alert) -> bool:
        """Decide ``alert`` in its own transaction: True if this call created it; False if it
        was decided already or no channel takes its kind.

        Raises:
            Whatever the database raises (the caller retries or logs).
        """
        channels = self.routing.channels_for(alert.kind)
        if not channels:
            return False
        async with self.sessions.begin() as session:
            created = await record_alert(session, alert, channels, self.clock())
        if created:
            log.warning("alert %s: %s", alert.kind, alert.message)
        return created


def batch_alert(
    row: ManagedObject, kind: AlertKind, why: str, now: datetime, status: str | None = None
) -> Alert:
    """A failed (``batch_failed``) or retired (``batch_stale``) batch: one alert per batch,
    its period the batch's life (creation to ``now``); ``status`` the provider's last word."""
    what = "failed" if kind == "batch_failed" else "was retired as stale, nothing billed"
    group = f" ({row.model_group})" if row.model_group else ""
    labels = {
        name: value
        for name, value in (
            ("user_id", row.user_id),
            ("team_id", row.team_id),
            ("organization_id", row.organization_id),
            ("customer_id", row.end_user),
        )
        if value
    }
    return Alert(
        kind=kind,
        scope_type="batch",
        scope_id=row.id,
        scope_name=row.model_group,
        message=f"batch {row.id}{group} {what}: {why}",
        period_start=row.created_at,
        period_end=now,
        labels=labels,
        extra={
            "status": status or row.status,
            "deployment_id": row.deployment_id,
            "requests_total": row.requests_total,
            "requests_completed": row.requests_completed,
            "requests_failed": row.requests_failed,
            "created_at": row.created_at.astimezone(UTC).isoformat(),
        },
    )
