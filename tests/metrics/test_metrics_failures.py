"""/metrics when its storage fails, and multiprocess files of workers that died."""

from __future__ import annotations

import asyncio
import logging

import pytest
from metrics_helpers import samples, total

from spendgate.enforcement import Enforcer
from spendgate.metrics import BudgetCollector, BudgetReader, LabelPolicy, MetricsExporter, RequestMetrics
from spendgate.stores.counters import storage_from_url
from spendgate.stores.database import create_engine, database_url


def _observe_one(metrics: RequestMetrics) -> None:
    metrics.observe(
        route="chat",
        requested_model="gpt-4o",
        model="gpt-4o",
        provider="openai",
        api_key="k",
        user=None,
        team=None,
        end_user=None,
        input_tokens=1,
        output_tokens=1,
        nanos=5,
        outcome="success",
        duration=0.1,
        overhead=0.001,
    )


def test_unreachable_budget_storage_still_serves_the_other_metrics(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: the database and Redis both refuse.
    engine = create_engine(database_url("postgresql://postgres@127.0.0.1:1/x"), connect_timeout=1)
    enforcer = Enforcer(storage_from_url("redis://127.0.0.1:1/0"))
    metrics = RequestMetrics(LabelPolicy(["gpt-4o"]))
    _observe_one(metrics)
    exporter = MetricsExporter(metrics, BudgetReader(engine, enforcer, tz="UTC", cap=10, min_interval=0))

    async def scrape_twice() -> tuple[str, str]:
        try:
            return (await exporter.scrape()).decode(), (await exporter.scrape()).decode()
        finally:
            await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="spendgate.metrics"):
        first, second = asyncio.run(scrape_twice())
    for text in (first, second):
        assert total(text, "litellm_requests_metric_total", requested_model="gpt-4o") == 1
        assert total(text, "spendgate_budget_metrics_stale") == 1
        assert samples(text, "litellm_remaining_team_budget_metric") == []
    # One line for the failure, not one (or a stack trace) per scrape.
    records = [r for r in caplog.records if r.name == "spendgate.metrics"]
    assert len(records) == 1 and records[0].exc_info is None


def test_a_hanging_budget_storage_is_bounded_and_recovers() -> None:
    class HangingReader(BudgetReader):
        hang = True

        async def refresh(self, collector: BudgetCollector) -> None:
            if self.hang:
                await asyncio.sleep(3600)

    engine = create_engine(database_url("sqlite+aiosqlite:///:memory:"))
    reader = HangingReader(engine, Enforcer(storage_from_url("memory://")), tz="UTC", cap=10)
    exporter = MetricsExporter(RequestMetrics(LabelPolicy([])), reader, budget_timeout=0.2)

    async def scrape_twice() -> tuple[str, str]:
        try:
            first = (await asyncio.wait_for(exporter.scrape(), 10)).decode()
            reader.hang = False
            return first, (await exporter.scrape()).decode()
        finally:
            await engine.dispose()

    first, second = asyncio.run(scrape_twice())
    assert total(first, "spendgate_budget_metrics_stale") == 1
    assert total(second, "spendgate_budget_metrics_stale") == 0
