"""Unpriced usage alerts from the ledger's rollups (SQLite and PostgreSQL): one per
(deployment or model, UTC day) with the count and the first time, decided once across
scanners and scans; priced usage alerts nothing; the next day alerts again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sender_helpers import Clock
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from spendgate.alerts import AlertRouting
from spendgate.alerts.operational import OperationalAlerts
from spendgate.alerts.settings import WebhookChannel
from spendgate.alerts.unpriced import UnpricedScan
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.models import AlertOutboxRow, AlertRow

DAY = datetime(2026, 12, 5, tzinfo=UTC)
ROUTING = AlertRouting(
    channels={"webhook": WebhookChannel("webhook", "http://127.0.0.1:9/hook")},
    routes={"webhook": frozenset({"failed_tracking_spend"})},
)


def _event(n: int, at: datetime, *, unpriced: bool = True, **kw: Any) -> SpendEvent:
    fields: dict[str, Any] = {
        "event_id": f"ev-{n}",
        "occurred_at": at,
        "cost_nanos": 0 if unpriced else 1_000,
        "cost_items": {} if unpriced else {"input": 1_000},
        "usage": Usage(input_tokens=10, output_tokens=5),
        "unpriced": unpriced,
        "unpriced_reason": "no price is known for model 'my-llama'" if unpriced else None,
        "model": "my-llama",
        "provider": "openai",
        "deployment_id": "dep-llama",
    }
    fields.update(kw)
    return SpendEvent(**fields)


def _scan(engine: AsyncEngine, clock: Clock, routing: AlertRouting = ROUTING) -> UnpricedScan:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return UnpricedScan(OperationalAlerts(sessions, routing, instance_id="test", clock=clock))


async def _alerts(engine: AsyncEngine) -> list[AlertRow]:
    async with AsyncSession(engine) as session:
        stmt = select(AlertRow).order_by(AlertRow.period_start, AlertRow.scope_type, AlertRow.scope_id)
        return list((await session.scalars(stmt)).all())


async def test_one_alert_per_deployment_or_model_and_day(engine: AsyncEngine) -> None:
    ledger = LedgerRepository(engine)
    first = DAY + timedelta(hours=9, minutes=3, seconds=7)
    await ledger.write_batch(
        [
            _event(1, first + timedelta(minutes=20)),
            _event(2, first),  # the first, written second
            _event(3, first + timedelta(hours=2)),
            _event(4, first + timedelta(hours=3), deployment_id=None, model="no-deploy", provider="ollama"),
            _event(5, first, unpriced=False, model="gpt-4o-mini", deployment_id="dep-gpt"),
        ]
    )
    clock = Clock(DAY + timedelta(hours=14))
    scans = [_scan(engine, clock), _scan(engine, clock)]  # two instances
    assert sorted([await s.run_once() for s in scans]) == [0, 2]

    alerts = await _alerts(engine)
    assert [(a.kind, a.scope_type, a.scope_id) for a in alerts] == [
        ("unpriced_usage", "deployment", "dep-llama"),
        ("unpriced_usage", "model", "no-deploy"),
    ]
    dep, model = alerts
    assert dep.window == "1d" and dep.period_start == DAY and dep.period_end == DAY + timedelta(days=1)
    assert dep.scope_name == "my-llama"
    extra = (dep.extra or {})["extra"]
    assert extra["unpriced_requests"] == 3
    assert extra["first_seen_at"] == first.isoformat()
    assert extra["unpriced_reason"] == "no price is known for model 'my-llama'"
    assert "3 calls to model my-llama on deployment dep-llama" in dep.message
    assert "2026-12-05 09:03:07 UTC" in dep.message
    assert (model.extra or {})["extra"]["providers"] == ["ollama"]
    assert "1 call to model no-deploy had usage" in model.message
    async with AsyncSession(engine) as session:
        outbox = (await session.scalars(select(AlertOutboxRow))).all()
    assert sorted(o.alert_id for o in outbox) == sorted(a.id for a in alerts)

    # More unpriced calls the same day: no new alert; the next day: one again.
    await ledger.write_batch([_event(6, first + timedelta(hours=4))])
    assert await scans[0].run_once() == 0 and await _scan(engine, clock).run_once() == 0
    await ledger.write_batch([_event(7, DAY + timedelta(days=1, hours=1))])
    clock.advance(86400)
    assert await scans[1].run_once() == 1
    latest = (await _alerts(engine))[-1]
    assert latest.scope_id == "dep-llama" and latest.period_start == DAY + timedelta(days=1)
    assert (latest.extra or {})["extra"]["unpriced_requests"] == 1


async def test_late_events_alert_for_their_own_day_and_no_channel_means_no_scan(engine: AsyncEngine) -> None:
    ledger = LedgerRepository(engine)
    late = DAY + timedelta(hours=23, minutes=59)
    await ledger.write_batch([_event(1, late)])  # reached the ledger after midnight
    clock = Clock(DAY + timedelta(days=1, minutes=5))
    budget_only = AlertRouting(channels=ROUTING.channels, routes={"webhook": frozenset({"budget_alerts"})})
    assert await _scan(engine, clock, budget_only).run_once() == 0
    assert await _alerts(engine) == []
    assert await _scan(engine, clock).run_once() == 1
    [alert] = await _alerts(engine)
    assert alert.period_start == DAY
    clock.advance(86400)  # two days on, yesterday is the day after: nothing to read
    assert await _scan(engine, clock).run_once() == 0
