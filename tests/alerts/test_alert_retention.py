"""Retention of the alert tables (SQLite and PostgreSQL): rows older than the cutoff go —
the delivery log, done outbox rows, and decisions whose period ended — while a pending
delivery, a recent row and a lifetime budget's decision (which keeps it from firing again)
stay; batches of any size finish over several statements."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sender_helpers import budget_alert
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from spendgate.alerts import Alert, alert_id_of, record_alert
from spendgate.alerts.retention import REPORT_LOOKBACK, PruneResult, prune_alerts
from spendgate.alerts.store import OutboxRepository
from spendgate.stores.database.models import AlertDeliveryRow, AlertOutboxRow, AlertRow

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)
OLD = NOW - timedelta(days=100)


async def _decide(
    sessions: async_sessionmaker[AsyncSession], alert: Alert, at: datetime, outcome: str | None
) -> str:
    """Record ``alert`` at ``at`` to the webhook, with one attempt ending in ``outcome``
    (None: never attempted, still pending)."""
    async with sessions.begin() as session:
        assert await record_alert(session, alert, ["webhook"], at)
        stmt = select(AlertOutboxRow.id).where(AlertOutboxRow.alert_id == alert_id_of(alert))
        outbox_id = (await session.scalars(stmt)).one()
    if outcome is not None:
        async with sessions.begin() as session:
            repo = OutboxRepository(session)
            claim = await repo.claim(outbox_id, at, 60)
            assert claim is not None
            await repo.finish(
                claim,
                outcome=outcome,  # type: ignore[arg-type]
                attempted_at=at,
                duration_ms=3,
                status_code=200 if outcome == "sent" else 500,
                error=None,
                next_attempt_at=at + timedelta(minutes=1) if outcome == "retry" else None,
                sender="test",
            )
    return alert_id_of(alert)


async def _ids(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(AlertRow.id).order_by(AlertRow.created_at))).all())


async def _count(sessions: async_sessionmaker[AsyncSession], table: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


def _period(alert: Alert, start: datetime) -> Alert:
    return replace(alert, period_start=start, period_end=start + timedelta(days=1), reset_at=None)


async def test_old_rows_go_and_what_must_stay_stays(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    old_sent = await _decide(sessions, _period(budget_alert("k1"), OLD), OLD, "sent")
    old_dead = await _decide(sessions, _period(budget_alert("k2"), OLD), OLD, "dead")
    old_pending = await _decide(sessions, _period(budget_alert("k3"), OLD), OLD, "retry")
    lifetime = replace(budget_alert("k4"), window=None, period_start=None, period_end=None, reset_at=None)
    old_lifetime = await _decide(sessions, lifetime, OLD, "sent")
    old_test = await _decide(
        sessions, Alert(kind="test", scope_type="test", scope_id="t-1", message="hi"), OLD, "sent"
    )
    recent = await _decide(sessions, _period(budget_alert("k5"), NOW - timedelta(days=2)), NOW, "sent")
    report = Alert(kind="spend_report", scope_type="global", scope_id="", message="daily", threshold=None)
    old_report = await _decide(sessions, _period(report, OLD), OLD, "sent")  # may still be caught up
    assert await _count(sessions, AlertDeliveryRow) == 7

    result = await prune_alerts(sessions, CUTOFF)

    assert result == PruneResult(deliveries=6, outbox=5, alerts=3)
    kept = set(await _ids(sessions))
    assert kept == {old_pending, old_lifetime, recent, old_report}
    assert {old_sent, old_dead, old_test}.isdisjoint(kept)
    async with sessions() as session:
        outbox = (await session.scalars(select(AlertOutboxRow))).all()
        log = (await session.scalars(select(AlertDeliveryRow))).all()
    assert {(o.alert_id, o.status) for o in outbox} == {(old_pending, "pending"), (recent, "sent")}
    assert [row.alert_id for row in log] == [recent]  # the pending row's old attempt is gone too
    # The lifetime crossing is still decided: it cannot fire again.
    async with sessions.begin() as session:
        assert not await record_alert(session, lifetime, ["webhook"], NOW)
    assert await prune_alerts(sessions, CUTOFF) == PruneResult()
    # Years on, the report can no longer be caught up: it goes too.
    await prune_alerts(sessions, OLD + REPORT_LOOKBACK + timedelta(days=2))
    assert set(await _ids(sessions)) == {old_pending, old_lifetime}


async def test_a_large_prune_runs_in_batches(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions.begin() as session:
        for n in range(25):
            await record_alert(session, _period(budget_alert(f"k{n}"), OLD), ["webhook", "email"], OLD)
    async with sessions.begin() as session:
        await session.execute(update(AlertOutboxRow).values(status="sent"))
    assert await prune_alerts(sessions, CUTOFF, batch=7) == PruneResult(outbox=50, alerts=25)
    assert await _count(sessions, AlertRow) == 0
