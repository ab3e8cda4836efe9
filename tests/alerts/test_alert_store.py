"""The decision row: N sessions, engines, tasks or processes deciding the same alert write it
once, with one outbox row per channel (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from record_child import crossing
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.alerts import Alert, alert_id_of, record_alert
from spendgate.alerts.store import OutboxRepository, alert_from_row
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import AlertOutboxRow, AlertRow

CHILD = Path(__file__).with_name("record_child.py")
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with AsyncSession(engine) as session:
        alerts = await session.scalar(select(func.count()).select_from(AlertRow))
        outbox = await session.scalar(select(func.count()).select_from(AlertOutboxRow))
    return int(alerts or 0), int(outbox or 0)


async def _record(engine: AsyncEngine, alert: Alert, channels: list[str]) -> bool:
    async with AsyncSession(engine) as session, session.begin():
        return await record_alert(session, alert, channels, NOW)


async def test_same_alert_from_two_engines_and_twenty_tasks_is_written_once(
    engine: AsyncEngine, database_url: str
) -> None:
    other = create_engine(database_url)
    try:
        alert = crossing("key-a")
        created = await asyncio.gather(
            *(_record(engine if i % 2 else other, alert, ["slack", "webhook", "email"]) for i in range(20))
        )
    finally:
        await other.dispose()
    assert sum(created) == 1
    assert await _counts(engine) == (1, 3)
    async with AsyncSession(engine) as session:
        rows = (await session.scalars(select(AlertOutboxRow).order_by(AlertOutboxRow.channel))).all()
    assert [r.channel for r in rows] == ["email", "slack", "webhook"]
    assert {r.alert_id for r in rows} == {alert_id_of(alert)}
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    assert len({r.delivery_id for r in rows}) == 3


async def test_each_threshold_window_and_period_is_its_own_alert(engine: AsyncEngine) -> None:
    base = crossing("key-b")
    assert base.period_start is not None
    variants = [
        base,
        replace(base, threshold=Decimal(100)),
        replace(base, threshold=Decimal("87.5")),
        replace(base, window="1mo"),
        replace(base, period_start=base.period_start + timedelta(days=1)),
        replace(base, kind="soft_budget_crossed", threshold=None),
        replace(base, scope_type="team"),
        replace(base, window=None, period_start=None, threshold=None),
    ]
    assert [await _record(engine, a, ["slack"]) for a in variants] == [True] * len(variants)
    assert [await _record(engine, a, ["slack"]) for a in variants] == [False] * len(variants)
    assert await _counts(engine) == (len(variants), len(variants))


async def test_the_row_gives_back_the_alert(engine: AsyncEngine) -> None:
    alert = Alert(
        kind="projected_exceed",
        scope_type="team",
        scope_id="team-1",
        scope_name="ml-research",
        message="projected to exceed",
        window="1mo",
        period_start=datetime(2026, 12, 1, tzinfo=UTC),
        period_end=datetime(2027, 1, 1, tzinfo=UTC),
        spend_nanos=1,
        limit_nanos=3,
        soft_limit_nanos=2,
        reset_at=datetime(2027, 1, 1, tzinfo=UTC),
        projected_spend_nanos=5,
        projected_exceeded_at=datetime(2026, 12, 20, tzinfo=UTC),
        labels={"team_id": "team-1", "team_alias": "ml-research"},
        extra={"n": 1},
    )
    assert await _record(engine, alert, [])
    async with AsyncSession(engine) as session:
        row = await session.get(AlertRow, alert_id_of(alert))
        assert row is not None
        assert alert_from_row(row) == alert
        assert await OutboxRepository(session).due(NOW, 10) == []  # no channel: no outbox row


async def test_a_failed_transaction_decides_nothing(engine: AsyncEngine) -> None:
    alert = crossing("key-c")
    with pytest.raises(RuntimeError):
        async with AsyncSession(engine) as session, session.begin():
            assert await record_alert(session, alert, ["slack"], NOW)
            raise RuntimeError("the settlement failed after deciding")
    assert await _counts(engine) == (0, 0)
    assert await _record(engine, alert, ["slack"])  # decided again, and now kept


def test_naive_times_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Alert(kind="test", scope_type="test", scope_id="x", message="m", period_start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown alert kind"):
        Alert(kind="nope", scope_type="test", scope_id="x", message="m")  # type: ignore[arg-type]


def test_two_processes_with_twenty_tasks_each_write_it_once(database_url: str, tmp_path: Path) -> None:
    scope_id = f"key-proc-{uuid.uuid4().hex[:8]}"
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), database_url, scope_id, "20", str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    created = [int((child.communicate(timeout=60)[0] or "0").strip()) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sum(created) == 1

    async def count() -> tuple[int, int]:
        eng = create_engine(database_url)
        try:
            async with AsyncSession(eng) as session:
                alerts = await session.scalar(
                    select(func.count()).select_from(AlertRow).where(AlertRow.scope_id == scope_id)
                )
                outbox = await session.scalar(
                    select(func.count())
                    .select_from(AlertOutboxRow)
                    .join(AlertRow, AlertRow.id == AlertOutboxRow.alert_id)
                    .where(AlertRow.scope_id == scope_id)
                )
            return int(alerts or 0), int(outbox or 0)
        finally:
            await eng.dispose()

    assert asyncio.run(count()) == (1, 2)


async def test_a_name_longer_than_its_column_is_kept_shortened(engine: AsyncEngine) -> None:
    """A 300-character team alias is decided and stored (its first 255 characters), not
    refused by PostgreSQL's column limit."""
    alert = replace(crossing("key-long"), scope_name="n" * 300)
    assert await _record(engine, alert, ["slack"])
    async with AsyncSession(engine) as session:
        row = await session.get(AlertRow, alert_id_of(alert))
        assert row is not None and row.scope_name == "n" * 255
    assert await _counts(engine) == (1, 1)
