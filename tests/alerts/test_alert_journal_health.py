"""journal_backlog and events_dead_lettered, read from a real recorder on PostgreSQL: its
writes refused (a fault proxy cutting the database) back it up — by queue depth and by
time without a successful write — and an event the database refuses for good (a model name
longer than its column) is dead-lettered; each alerts at most once per hour, and every
dead letter is counted in one alert."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sender_helpers import Clock
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from netfaults import FaultProxy
from spendgate.alerts import AlertRouting
from spendgate.alerts.journal_health import JournalMonitor
from spendgate.alerts.operational import OperationalAlerts
from spendgate.alerts.settings import WebhookChannel
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.recorder import Recorder
from spendgate.stores.database.models import AlertRow

pytestmark = pytest.mark.postgres

START = datetime(2026, 12, 5, 10, 20, tzinfo=UTC)
ROUTING = AlertRouting(
    channels={"webhook": WebhookChannel("webhook", "http://127.0.0.1:9/hook")},
    routes={"webhook": frozenset({"failed_tracking_spend"})},
)


def _event(n: int, model: str = "gpt-4o-mini") -> SpendEvent:
    return SpendEvent(event_id=f"j-{n}", occurred_at=START, cost_nanos=100, model=model)


def _monitor(engine: AsyncEngine, recorder: Recorder, clock: Clock, **limits: float) -> JournalMonitor:
    alerts = OperationalAlerts(
        async_sessionmaker(engine, expire_on_commit=False), ROUTING, instance_id="host-a:1", clock=clock
    )
    return JournalMonitor(alerts, lambda: recorder.stats, "host-a:/var/journal/worker-0", **limits)  # type: ignore[arg-type]


async def _alerts(engine: AsyncEngine) -> list[AlertRow]:
    async with AsyncSession(engine) as session:
        return list(
            (await session.scalars(select(AlertRow).order_by(AlertRow.created_at, AlertRow.kind))).all()
        )


async def test_a_recorder_that_cannot_write_backs_up_and_alerts_once_per_hour(
    pg_direct: AsyncEngine, pg_proxied: AsyncEngine, pg_proxy: FaultProxy, tmp_path: Path
) -> None:
    recorder = Recorder(pg_proxied, tmp_path / "journal", flush_interval=0.02, retry_max=0.1)
    await recorder.start()
    clock = Clock(START)
    monitor = _monitor(pg_direct, recorder, clock, max_events=5, max_bytes=1 << 30, stalled_seconds=120)
    try:
        pg_proxy.cut()
        for n in range(3):
            recorder.record(_event(n))
        await asyncio.sleep(0.3)  # the writer tries and fails
        await monitor.run_once()
        clock.advance(60)
        await monitor.run_once()
        assert await _alerts(pg_direct) == []  # 3 events, 60 s: not a backlog yet
        clock.advance(60)
        await monitor.run_once()  # 120 s with no successful write
        [stalled] = await _alerts(pg_direct)
        assert (stalled.kind, stalled.scope_type, stalled.window) == ("journal_backlog", "journal", "1h")
        assert stalled.scope_id == "host-a:/var/journal/worker-0"
        assert "3 events waiting with no successful write since 2026-12-05 10:20:00 UTC" in stalled.message
        assert "Last error:" in stalled.message
        for n in range(3, 8):
            recorder.record(_event(n))
        clock.advance(600)
        await monitor.run_once()
        assert len(await _alerts(pg_direct)) == 1  # the same hour: once
        clock.advance(3600)
        await monitor.run_once()
        alerts = await _alerts(pg_direct)
        assert len(alerts) == 2 and "8 events waiting (threshold 5)" in alerts[1].message
        pg_proxy.restore()
        await recorder.flush(timeout=20)
        clock.advance(3600)
        await monitor.run_once()  # written: no backlog, no alert
        assert len(await _alerts(pg_direct)) == 2
    finally:
        pg_proxy.restore()
        await recorder.close()


async def test_dead_lettered_events_are_each_counted_in_one_alert(
    pg_direct: AsyncEngine, tmp_path: Path
) -> None:
    recorder = Recorder(pg_direct, tmp_path / "journal", flush_interval=0.02)
    await recorder.start()
    clock = Clock(START)
    monitor = _monitor(pg_direct, recorder, clock)
    try:
        await monitor.run_once()
        recorder.record(_event(1))
        recorder.record(_event(2, model="m" * 300))  # longer than its column: refused for good
        await recorder.flush(timeout=20)
        clock.advance(10)
        await monitor.run_once()
        [alert] = await _alerts(pg_direct)
        assert alert.kind == "events_dead_lettered" and alert.scope_type == "journal"
        assert alert.message.startswith(
            "1 spend event refused for good by the database since 2026-12-05 10:20:10"
        )
        assert (alert.extra or {})["extra"]["dead_lettered"] == 1
        assert (tmp_path / "journal" / "dead-letter.jsonl").read_bytes().count(b"\n") == 1

        recorder.record(_event(3, model="n" * 300))
        recorder.record(_event(4, model="o" * 300))
        await recorder.flush(timeout=20)
        clock.advance(60)
        await monitor.run_once()  # the same hour: they wait for the next alert
        assert len(await _alerts(pg_direct)) == 1
        clock.advance(timedelta(hours=1).total_seconds())
        await monitor.run_once()
        alerts = await _alerts(pg_direct)
        assert len(alerts) == 2
        assert alerts[1].message.startswith(
            "2 spend events refused for good by the database since 2026-12-05 10:21:10"
        )
        clock.advance(timedelta(hours=1).total_seconds())
        await monitor.run_once()  # nothing new
        assert len(await _alerts(pg_direct)) == 2
    finally:
        await recorder.close()
