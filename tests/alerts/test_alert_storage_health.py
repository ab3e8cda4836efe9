"""storage_unreachable, against real outages: PostgreSQL behind a fault proxy that refuses
connections, and a private redis-server that is stopped. Redis down is alerted while it
lasts, once per hour across instances; the database down is alerted when it is back, with
when it began and ended; a Redis outage that happened while the database was down too is
alerted when both are back. A blip shorter than ``after_seconds`` alerts nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from sender_helpers import Clock
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from netfaults import FaultProxy, RedisServer
from spendgate.alerts import AlertRouting
from spendgate.alerts.operational import OperationalAlerts
from spendgate.alerts.settings import WebhookChannel
from spendgate.alerts.storage_health import StorageMonitor
from spendgate.stores.database.models import AlertOutboxRow, AlertRow

pytestmark = pytest.mark.postgres

START = datetime(2026, 12, 5, 10, 20, tzinfo=UTC)
ROUTING = AlertRouting(
    channels={"webhook": WebhookChannel("webhook", "http://127.0.0.1:9/hook")},
    routes={"webhook": None},
)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _monitor(engine: AsyncEngine, clock: Clock, instance: str, **probes: Any) -> StorageMonitor:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    alerts = OperationalAlerts(sessions, ROUTING, instance_id=instance, clock=clock)
    return StorageMonitor(alerts, probes, after_seconds=60, timeout_seconds=2)


def _database_probe(engine: AsyncEngine) -> Any:
    async def probe() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return probe


async def _alerts(engine: AsyncEngine) -> list[AlertRow]:
    async with AsyncSession(engine) as session:
        return list((await session.scalars(select(AlertRow).order_by(AlertRow.created_at))).all())


async def _ticks(monitors: list[StorageMonitor], clock: Clock, seconds: float, n: int = 1) -> None:
    for _ in range(n):
        clock.advance(seconds)
        for monitor in monitors:
            await monitor.run_once()


async def test_redis_down_alerts_while_it_lasts_once_per_hour_across_instances(
    pg_direct: AsyncEngine, redis_server: RedisServer
) -> None:
    client = aioredis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=1)
    clock = Clock(START)
    monitors = [
        _monitor(pg_direct, clock, name, database=_database_probe(pg_direct), redis=client.ping)
        for name in ("host-a:1", "host-b:2")
    ]
    try:
        await _ticks(monitors, clock, 0)
        redis_server.stop()
        await _ticks(monitors, clock, 30, n=2)  # 30 s: not yet an outage
        assert await _alerts(pg_direct) == []
        await _ticks(monitors, clock, 30)  # 60 s
        [alert] = await _alerts(pg_direct)
        assert (alert.kind, alert.scope_type, alert.scope_id, alert.window) == (
            "storage_unreachable",
            "storage",
            "redis",
            "1h",
        )
        assert alert.period_start == datetime(2026, 12, 5, 10, tzinfo=UTC)
        assert "Redis is unreachable from host-a:1 since 2026-12-05 10:20:30 UTC" in alert.message
        assert "ConnectionError" in alert.message
        await _ticks(monitors, clock, 600, n=3)  # the same hour: nothing new
        assert len(await _alerts(pg_direct)) == 1
        await _ticks(monitors, clock, 1800)  # 11:21, still down: once more, for this hour
        alerts = await _alerts(pg_direct)
        assert [a.period_start.hour for a in alerts] == [10, 11]
        assert "since 2026-12-05 10:20:30 UTC" in alerts[1].message
        redis_server.start()
        await _ticks(monitors, clock, 30, n=2)  # back: already alerted, nothing more
        assert len(await _alerts(pg_direct)) == 2
        async with AsyncSession(pg_direct) as session:
            outbox = (await session.scalars(select(AlertOutboxRow))).all()
        assert len(outbox) == 2 and {o.channel for o in outbox} == {"webhook"}
    finally:
        await client.aclose()


async def test_database_down_is_alerted_when_it_is_back_with_both_times(
    pg_direct: AsyncEngine, pg_proxied: AsyncEngine, pg_proxy: FaultProxy, redis_server: RedisServer
) -> None:
    client = aioredis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=1)
    clock = Clock(START)
    monitor = _monitor(pg_proxied, clock, "host-a:1", database=_database_probe(pg_proxied), redis=client.ping)
    try:
        await _ticks([monitor], clock, 0)
        pg_proxy.cut()
        redis_server.stop()  # Redis too: its alert cannot be written either
        await _ticks([monitor], clock, 30, n=4)  # 2 minutes down
        assert await _alerts(pg_direct) == [] and monitor.waiting == ()
        redis_server.start()
        await _ticks([monitor], clock, 30)  # Redis back first: its outage waits for the database
        assert len(monitor.waiting) == 1
        pg_proxy.restore()
        for _ in range(5):  # a pooled connection the cut broke may fail one check
            await _ticks([monitor], clock, 30)
            if not monitor.waiting and len(await _alerts(pg_direct)) == 2:
                break
        alerts = {a.scope_id: a for a in await _alerts(pg_direct)}
        assert set(alerts) == {"database", "redis"} and monitor.waiting == ()
        database = alerts["database"]
        assert database.period_start == datetime(2026, 12, 5, 10, tzinfo=UTC)
        assert (
            "the database was unreachable from host-a:1 from 2026-12-05 10:20:30 UTC to" in database.message
        )
        extra = (database.extra or {})["extra"]
        assert extra["since"] == (START + timedelta(seconds=30)).isoformat()
        assert extra["until"] is not None and extra["until"] > extra["since"]
        redis = alerts["redis"]
        expected = (
            "Redis was unreachable from host-a:1 from 2026-12-05 10:20:30 UTC to 2026-12-05 10:22:30 UTC"
        )
        assert f"{expected} (2m 00s)" in redis.message
        await _ticks([monitor], clock, 30, n=2)
        assert len(await _alerts(pg_direct)) == 2
    finally:
        await client.aclose()


async def test_a_blip_shorter_than_after_seconds_alerts_nothing(
    pg_direct: AsyncEngine, pg_proxied: AsyncEngine, pg_proxy: FaultProxy
) -> None:
    clock = Clock(START)
    monitor = _monitor(pg_proxied, clock, "host-a:1", database=_database_probe(pg_proxied))
    await _ticks([monitor], clock, 0)
    pg_proxy.cut()
    await _ticks([monitor], clock, 20, n=2)
    pg_proxy.restore()
    for _ in range(3):
        await _ticks([monitor], clock, 5)
    assert await _alerts(pg_direct) == [] and monitor.waiting == ()
