"""/metrics when its storage fails, and multiprocess files of workers that died."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from metrics_helpers import samples, total
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from spendgate.enforcement import Enforcer
from spendgate.metrics import (
    MULTIPROC_ENV,
    BudgetCollector,
    BudgetReader,
    LabelPolicy,
    MetricsExporter,
    RequestMetrics,
    sweep_dead_processes,
)
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


_KILLED_WORKER = """
import os
from spendgate.metrics import LabelPolicy, RequestMetrics
RequestMetrics(LabelPolicy([])).health(in_flight=7, queue_depth=3, journal_bytes=1000, dead_lettered=0)
os._exit(9)  # killed: uvicorn's hung-worker kill, the OOM killer
"""

_STOPPED_WORKER = """
import asyncio, os
from spendgate.metrics import LabelPolicy, RequestMetrics, report_health

async def main() -> None:
    task = asyncio.create_task(report_health(RequestMetrics(LabelPolicy([])), lambda: (5, 2, 10, 0), 0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

asyncio.run(main())
os._exit(0)
"""


def _worker(code: str, directory: Path) -> int:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory))
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=False)
    return done.returncode


def _live_gauges(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry).decode()


def test_a_killed_workers_live_gauges_are_swept(tmp_path: Path) -> None:
    assert _worker(_KILLED_WORKER, tmp_path) == 9
    (killed,) = tmp_path.glob("gauge_livesum_*.db")
    assert total(_live_gauges(tmp_path), "spendgate_requests_in_flight") == 7
    # The same values under a pid that is alive (this one): kept by the sweep.
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    shutil.copy(killed, alive)
    assert total(_live_gauges(tmp_path), "spendgate_requests_in_flight") == 14
    dead = sweep_dead_processes(str(tmp_path))
    assert dead == [int(killed.stem.rsplit("_", 1)[1])]
    assert not killed.exists() and alive.exists()
    assert total(_live_gauges(tmp_path), "spendgate_requests_in_flight") == 7
    assert total(_live_gauges(tmp_path), "spendgate_recorder_queue_depth") == 3
    alive.unlink()
    assert total(_live_gauges(tmp_path), "spendgate_requests_in_flight") == 0


def test_a_stopping_worker_marks_itself_dead(tmp_path: Path) -> None:
    assert _worker(_STOPPED_WORKER, tmp_path) == 0
    assert not list(tmp_path.glob("gauge_live*.db"))
    assert total(_live_gauges(tmp_path), "spendgate_requests_in_flight") == 0


def test_one_worker_cleans_a_preset_multiprocess_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR`` set the exporter sums that directory even with one
    worker: ``serve`` must empty last run's files then too, and again when it stops."""
    from typer.testing import CliRunner

    from spendgate.cli import _register, app

    _register()
    config = tmp_path / "config.yaml"
    db = tmp_path / "spendgate.db"
    config.write_text(f"general_settings:\n  database_url: sqlite+aiosqlite:///{db}\n")
    own = tmp_path / "prom"
    own.mkdir()
    (own / "counter_999.db").write_bytes(b"last run's")
    monkeypatch.setenv(MULTIPROC_ENV, str(own))
    monkeypatch.setenv("SPENDGATE_CONFIG", "")  # serve sets it: restored after the test
    seen: list[list[str]] = []

    def run(*args: object) -> None:
        seen.append(sorted(p.name for p in own.iterdir()))
        (own / f"counter_{os.getpid()}.db").write_bytes(b"this run's")

    monkeypatch.setattr("spendgate.cli.serve._run", run)
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [[]]
    assert list(own.iterdir()) == []
