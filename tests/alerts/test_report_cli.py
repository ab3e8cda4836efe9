"""``spendgate alerts report``: records a configured spend report now (SQLite and PostgreSQL),
once per period; a bad name or date is a one-line error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml
from report_helpers import DAY, DAY_START, Admin, Ledger, alert_rows, build_ledger, local_days
from typer.testing import CliRunner

from db_helpers import clear_database
from spendgate.cli import _register, app
from spendgate.stores.database import create_engine

runner = CliRunner()
_register()


def _setup(url: str) -> Ledger:
    async def run() -> Ledger:
        engine = create_engine(url)
        admin = Admin(engine)
        try:
            await clear_database(engine)
            return await build_ledger(engine, admin)
        finally:
            await admin.aclose()
            await engine.dispose()

    return asyncio.run(run())


def _alerts(url: str) -> list[tuple[str, int | None]]:
    async def run() -> list[tuple[str, int | None]]:
        engine = create_engine(url)
        try:
            rows = await alert_rows(engine)
            return [
                (day, a.spend_nanos) for day, (a, _) in zip(local_days(a for a, _ in rows), rows, strict=True)
            ]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_report_is_recorded_now_and_once(database_url: str, tmp_path: Path) -> None:
    ledger = _setup(database_url)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "general_settings": {
                    "alerting": ["webhook"],
                    "alerting_args": {
                        "spend_reports": [{"name": "daily", "frequency": "daily", "timezone": "Asia/Kolkata"}]
                    },
                },
                "environment_variables": {"WEBHOOK_URL": "http://127.0.0.1:9/hook"},
            }
        )
    )
    args = ["alerts", "report", "-c", str(config), "--name", "daily", "--database-url", database_url]
    result = runner.invoke(app, [*args, "--period", "2026-03-10", "--json"])
    assert result.exit_code == 0, result.output
    (answer,) = json.loads(result.output)["alerts"]
    assert answer["recorded"] is True and answer["alert_id"].startswith("alert_")
    assert _alerts(database_url) == [("2026-03-10", ledger.spent(DAY_START, DAY_START + DAY))]

    again = runner.invoke(app, [*args, "--period", "2026-03-10"])
    assert again.exit_code == 1 and "already recorded" in again.output
    bad = runner.invoke(app, [*args[:4], "--name", "weekly", "--database-url", database_url])
    assert bad.exit_code == 2 and "no report named 'weekly' (configured: daily)" in bad.output
    bad = runner.invoke(app, [*args, "--period", "10/03/2026"])
    assert bad.exit_code == 2 and "--period: expected a date" in bad.output
    assert len(_alerts(database_url)) == 1
