"""spendgate_alert_outbox_pending is counted when scraped from the real database (PostgreSQL
through a fault proxy): the pending rows only; when the database refuses the series is
dropped (never a stale value) with one warning, and it comes back with the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from metrics_helpers import samples
from prometheus_client import generate_latest
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from db_helpers import clear_database
from netfaults import FaultProxy
from spendgate.alerts import Alert, record_alert
from spendgate.alerts.store import OutboxRepository
from spendgate.metrics import LabelPolicy, MetricsExporter, OutboxCollector, RequestMetrics
from spendgate.stores.database import create_engine
from spendgate.stores.database.models import AlertOutboxRow

pytestmark = pytest.mark.postgres


@pytest_asyncio.fixture
async def proxied(postgres_url: str) -> AsyncIterator[tuple[AsyncEngine, FaultProxy]]:
    url = make_url(postgres_url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        engine = create_engine(
            url.set(host="127.0.0.1", port=proxy.port), connect_timeout=1, command_timeout=2, pool_timeout=1
        )
        await clear_database(engine)
        try:
            yield engine, proxy
        finally:
            proxy.restore()
            await engine.dispose()


async def test_pending_rows_are_counted_when_scraped_and_dropped_when_the_database_refuses(
    proxied: tuple[AsyncEngine, FaultProxy], caplog: pytest.LogCaptureFixture
) -> None:
    engine, proxy = proxied
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def pending() -> int:
        async with sessions() as session:
            return await OutboxRepository(session).pending_count()

    exporter = MetricsExporter(RequestMetrics(LabelPolicy(set())), outbox=OutboxCollector(pending, timeout=3))

    async def scrape() -> list[float]:
        text = (await exporter.scrape()).decode()
        return [s.value for s in samples(text, "spendgate_alert_outbox_pending")]

    assert await scrape() == [0]
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        for n in range(3):
            alert = Alert(kind="test", scope_type="test", scope_id=f"t-{n}", message="hi")
            await record_alert(session, alert, ["slack", "webhook"], now)
        await session.execute(
            update(AlertOutboxRow).where(AlertOutboxRow.channel == "slack").values(status="sent")
        )
    assert await scrape() == [3]  # the webhook rows; the sent ones are not pending

    proxy.cut()
    with caplog.at_level(logging.WARNING, logger="spendgate.metrics"):
        assert await scrape() == [] and await scrape() == []
    warnings = [r for r in caplog.records if "outbox metric unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert b"spendgate_alert_outbox_pending" not in generate_latest(exporter.registry)

    proxy.restore()
    for _ in range(3):  # a pooled connection the cut broke may fail one scrape
        if await scrape() == [3]:
            break
    assert await scrape() == [3]
