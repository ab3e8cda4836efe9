"""Retention: old alert, outbox and delivery-log rows are removed (``retention_days``).

A job (one instance, under the leader lock) calls :func:`prune_alerts` with the cutoff
``now - retention_days``; every step deletes at most ``batch`` rows per statement, each in
its own short transaction, so a large first prune never holds long locks:

1. delivery-log rows attempted before the cutoff;
2. outbox rows written before the cutoff that are done (``sent`` or ``dead``; a ``pending``
   row is still being delivered and is never removed), with their log rows;
3. decision rows written before the cutoff with no outbox row left, whose period ended
   before the cutoff, or test alerts. A decision row is what keeps its alert from firing
   twice, so one without a period end (a lifetime budget's crossing) is kept: removing it
   would let the same crossing alert again. So is a spend report's until its period ended
   :data:`REPORT_LOOKBACK` before the cutoff (the scheduler may catch up on up to 31
   periods of a monthly report).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spendgate.stores.database.models import AlertDeliveryRow, AlertOutboxRow, AlertRow

__all__ = ["REPORT_LOOKBACK", "PruneResult", "prune_alerts"]

REPORT_LOOKBACK = timedelta(days=31 * 31)
"""The longest a scheduled report's period can be caught up after it ended
(``lookback_periods`` ≤ 31 months)."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    """Rows removed by one prune."""

    deliveries: int = 0
    outbox: int = 0
    alerts: int = 0


async def _deleted(session: AsyncSession, stmt: Any) -> int:
    result: CursorResult[Any] = await session.execute(stmt.execution_options(synchronize_session=False))  # type: ignore[assignment]
    return int(result.rowcount or 0)


async def prune_alerts(
    sessions: async_sessionmaker[AsyncSession], cutoff: datetime, *, batch: int = 1000, max_batches: int = 100
) -> PruneResult:
    """Remove the rows older than ``cutoff`` (module docstring); at most ``max_batches``
    statements of ``batch`` rows per step, the rest left for the next run."""
    d, o, a = AlertDeliveryRow, AlertOutboxRow, AlertRow
    old_log = select(d.id).where(d.attempted_at < cutoff).limit(batch)
    done = select(o.id).where(o.status != "pending", o.created_at < cutoff).limit(batch)
    expired = (
        select(a.id)
        .where(
            a.created_at < cutoff,
            or_(a.kind == "test", and_(a.period_end.is_not(None), a.period_end < cutoff)),
            or_(a.kind != "spend_report", a.period_end < cutoff - REPORT_LOOKBACK),
            ~exists().where(o.alert_id == a.id),
        )
        .limit(batch)
    )
    deliveries = outbox = alerts = 0
    for _ in range(max_batches):
        async with sessions.begin() as session:
            removed = await _deleted(session, delete(d).where(d.id.in_(old_log.scalar_subquery())))
        deliveries += removed
        if removed < batch:
            break
    for _ in range(max_batches):
        async with sessions.begin() as session:
            rows = list((await session.scalars(done)).all())
            if rows:
                deliveries += await _deleted(session, delete(d).where(d.outbox_id.in_(rows)))
                outbox += await _deleted(session, delete(o).where(o.id.in_(rows)))
        if len(rows) < batch:
            break
    for _ in range(max_batches):
        async with sessions.begin() as session:
            ids = list((await session.scalars(expired)).all())
            if ids:
                alerts += await _deleted(session, delete(a).where(a.id.in_(ids)))
        if len(ids) < batch:
            break
    return PruneResult(deliveries, outbox, alerts)
