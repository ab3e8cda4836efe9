"""Budget alerts resolved by their period ending.

A budget alert belongs to one period of one window; when the period ends, the spend it was
about starts again from zero, so the alert is over. :func:`resolve_ended` decides one
``budget_resolved`` alert per (scope, window, period) that had budget alerts, once the
period has ended, through the same unique decision row as every alert (threshold ``""``):
run it on every instance, as often as wanted; each resolution is sent once. (A temporary
increase that clears a threshold within the period is detected at settlement instead:
:mod:`spendgate.enforcement.crossings`.)

Only periods that ended within ``lookback`` are looked at, so an upgrade does not resolve
years of old alerts at once, and the query stays small.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from spendgate.alerts.budget import budget_message, scope_labels
from spendgate.alerts.model import Alert
from spendgate.alerts.settings import AlertRouting
from spendgate.alerts.store import record_alert
from spendgate.stores.database.models import AlertRow

__all__ = ["RESOLVED_KINDS", "resolve_ended"]

RESOLVED_KINDS = ("budget_crossed", "soft_budget_crossed", "projected_exceed")
"""The kinds a period's end resolves."""


async def resolve_ended(
    session: AsyncSession,
    routing: AlertRouting,
    now: datetime,
    *,
    lookback: timedelta = timedelta(days=2),
    limit: int = 500,
) -> int:
    """Decide the resolutions due at ``now`` (at most ``limit``); returns how many this call
    created. The caller commits."""
    resolved = aliased(AlertRow)
    done = (
        select(resolved.id)
        .where(
            resolved.kind == "budget_resolved",
            resolved.scope_type == AlertRow.scope_type,
            resolved.scope_id == AlertRow.scope_id,
            resolved.window == AlertRow.window,
            resolved.period_start == AlertRow.period_start,
            resolved.threshold == "",
        )
        .exists()
    )
    stmt = (
        select(
            AlertRow.scope_type,
            AlertRow.scope_id,
            func.max(AlertRow.scope_name),
            AlertRow.window,
            AlertRow.period_start,
            AlertRow.period_end,
            func.max(AlertRow.spend_nanos),
            func.max(AlertRow.limit_nanos),
        )
        .where(
            AlertRow.kind.in_(RESOLVED_KINDS),
            and_(AlertRow.period_end <= now, AlertRow.period_end > now - lookback),
            ~done,
        )
        .group_by(
            AlertRow.scope_type,
            AlertRow.scope_id,
            AlertRow.window,
            AlertRow.period_start,
            AlertRow.period_end,
        )
        .limit(limit)
    )
    created = 0
    channels = routing.channels_for("budget_resolved")
    for scope_type, scope_id, name, window, start, end, spend, cap in (await session.execute(stmt)).all():
        crossed = await _crossed(session, scope_type, scope_id, window, start)
        alert = Alert(
            kind="budget_resolved",
            scope_type=scope_type,
            scope_id=scope_id,
            scope_name=name,
            message="",
            window=window or None,
            period_start=start,
            period_end=end,
            spend_nanos=spend,
            limit_nanos=cap,
            reset_at=end,
            labels=scope_labels(scope_type, scope_id),
            extra={"reason": "period_ended", "thresholds_crossed": crossed},
        )
        alert = replace(alert, message=budget_message(alert))
        if await record_alert(session, alert, channels, now):
            created += 1
    return created


async def _crossed(
    session: AsyncSession, scope_type: str, scope_id: str, window: str, start: datetime
) -> list[str]:
    """The thresholds (percent text, ascending) this period's budget alerts crossed."""
    rows = await session.execute(
        select(AlertRow.threshold).where(
            AlertRow.kind == "budget_crossed",
            AlertRow.scope_type == scope_type,
            AlertRow.scope_id == scope_id,
            AlertRow.window == window,
            AlertRow.period_start == start,
        )
    )
    return sorted((t for (t,) in rows.all() if t), key=Decimal)
