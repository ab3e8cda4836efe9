"""Helpers of the sender tests: a movable clock, routing over channels, recording alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.alerts import Alert, AlertRouting, SenderPolicy, record_alert
from spendgate.alerts.settings import Channel
from spendgate.stores.database.models import AlertDeliveryRow, AlertOutboxRow


class Clock:
    """A clock the test moves (no sleeping for retry delays)."""

    def __init__(self, start: datetime = datetime(2026, 12, 5, 12, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def routing(channels: Sequence[Channel], **policy: float) -> AlertRouting:
    return AlertRouting(
        channels={c.id: c for c in channels},
        routes={c.id: None for c in channels},
        dashboard_url="https://spendgate.example.test/ui",
        policy=SenderPolicy(**{"timeout_seconds": 5.0, "lease_seconds": 60.0, **policy}),  # type: ignore[arg-type]
    )


def budget_alert(scope_id: str, threshold: int = 80, spend_usd: int = 8) -> Alert:
    return Alert(
        kind="budget_crossed",
        scope_type="key",
        scope_id=scope_id,
        scope_name=f"alias-{scope_id}",
        message=f"key alias-{scope_id} has used {threshold}% of its daily budget",
        window="1d",
        period_start=datetime(2026, 12, 5, tzinfo=UTC),
        period_end=datetime(2026, 12, 6, tzinfo=UTC),
        threshold=Decimal(threshold),
        spend_nanos=spend_usd * 1_000_000_000,
        limit_nanos=10_000_000_000,
        reset_at=datetime(2026, 12, 6, tzinfo=UTC),
        labels={"token": "hashed-" + scope_id, "key_alias": f"alias-{scope_id}", "user_id": "u1"},
    )


async def record(engine: AsyncEngine, alerts: Sequence[Alert], route: AlertRouting, now: datetime) -> None:
    async with AsyncSession(engine) as session, session.begin():
        for alert in alerts:
            assert await record_alert(session, alert, route.channels_for(alert.kind), now)


async def deliveries(engine: AsyncEngine) -> list[AlertDeliveryRow]:
    async with AsyncSession(engine) as session:
        stmt = select(AlertDeliveryRow).order_by(AlertDeliveryRow.id)
        return list((await session.scalars(stmt)).all())


async def outbox(engine: AsyncEngine) -> list[AlertOutboxRow]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(AlertOutboxRow).order_by(AlertOutboxRow.id))).all())
