from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendgate.cli import _register, app
from spendgate.cli.spend import parse_when
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database import create_engine

runner = CliRunner()
_register()


def _seed(url: str) -> None:
    now = datetime.now(UTC)

    async def main() -> None:
        engine = create_engine(url)
        events = [
            SpendEvent(
                event_id=f"cli-{i}",
                occurred_at=now - timedelta(days=i % 10, minutes=5),
                cost_nanos=1_500_000_000,
                usage=Usage(input_tokens=100, output_tokens=10),
                team_id="team-a" if i % 2 else "team-b",
                model="gpt-4o-mini",
                provider="openai",
            )
            for i in range(20)
        ]
        await LedgerRepository(engine).write_batch(events)
        await engine.dispose()

    asyncio.run(main())


def test_db_upgrade_status_and_spend_report(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    behind = runner.invoke(app, ["db", "status", "--database-url", url])
    assert behind.exit_code == 1 and "behind" in behind.output
    up = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert up.exit_code == 0, up.output
    ok = runner.invoke(app, ["db", "status", "--database-url", url])
    assert ok.exit_code == 0 and "up to date" in ok.output
    _seed(url)

    table = runner.invoke(app, ["spend", "report", "--by", "team", "--since", "30d", "--database-url", url])
    assert table.exit_code == 0, table.output
    assert "team-a" in table.output and "$30.00" in table.output

    as_json = runner.invoke(
        app, ["spend", "report", "--by", "team,model", "--since", "30d", "--json", "--database-url", url]
    )
    data = json.loads(as_json.output)
    assert data["totals"]["spend"] == "30.000000000"
    assert {r["team"] for r in data["rows"]} == {"team-a", "team-b"}
    assert sum(r["cost_nanos"] for r in data["rows"]) == data["totals"]["cost_nanos"] == 30 * 10**9

    as_csv = runner.invoke(
        app,
        [
            "spend",
            "report",
            "--by",
            "team",
            "-g",
            "day",
            "--tz",
            "Asia/Kolkata",
            "--since",
            "30d",
            "--csv",
            "--database-url",
            url,
        ],
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert sum(int(r["requests"]) for r in rows) == 20
    assert all(r["period_start"].endswith("+05:30") for r in rows)


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    runner.invoke(app, ["db", "upgrade", "--database-url", url])
    bad = runner.invoke(app, ["spend", "report", "--by", "planet", "--database-url", url])
    assert bad.exit_code == 2 and "unknown dimension" in bad.output
    both = runner.invoke(app, ["spend", "report", "--by", "team,user", "--database-url", url])
    assert both.exit_code == 2 and "cannot group by both" in both.output


def test_parse_when() -> None:
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    assert parse_when("30d", now=now, tz="UTC") == now - timedelta(days=30)
    assert parse_when("2026-11-01", now=now, tz="Europe/Berlin").utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="cannot read time"):
        parse_when("last tuesday", now=now, tz="UTC")


def test_tag_report_total_counts_each_event_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tags.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    now = datetime.now(UTC)

    async def seed() -> None:
        engine = create_engine(url)
        tags = [("a", "b"), ("a",), ()]  # two tags, one, none
        events = [
            SpendEvent(
                event_id=f"tag-{i}",
                occurred_at=now - timedelta(hours=i + 1),
                cost_nanos=1_000_000_000,
                usage=Usage(input_tokens=10, output_tokens=1),
                tags=tags[i],
                model="gpt-4o-mini",
                provider="openai",
            )
            for i in range(3)
        ]
        await LedgerRepository(engine).write_batch(events)
        await engine.dispose()

    asyncio.run(seed())
    args = ["spend", "report", "--by", "tag", "--since", "1d", "--database-url", url]
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert {r["tag"]: r["requests"] for r in data["rows"]} == {None: 1, "a": 2, "b": 1}
    assert sum(r["cost_nanos"] for r in data["rows"]) == 4 * 10**9  # per tag
    assert data["totals"]["requests"] == 3 and data["totals"]["cost_nanos"] == 3 * 10**9  # each event once
    table = runner.invoke(app, args)
    assert "$3.00" in table.output and "$4.00" not in table.output


def test_db_rollup_days_recomputes_the_daily_rows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'days.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    _seed(url)  # 20 events of 1.5 USD over 10 days
    with sqlite3.connect(tmp_path / "days.db") as conn:
        count = conn.execute("SELECT count(*) FROM spend_rollups WHERE grain = 86400").fetchone()[0]
        conn.execute("DELETE FROM spend_rollups WHERE grain = 86400")
    done = runner.invoke(app, ["db", "rollup-days", "--database-url", url])
    assert done.exit_code == 0, done.output
    assert f"daily rollup rows recomputed: {count:,}" in done.output
    with sqlite3.connect(tmp_path / "days.db") as conn:
        total = conn.execute(
            "SELECT sum(cost_nanos) FROM spend_rollups WHERE grain = 86400 AND scope_type = 'global'"
        ).fetchone()[0]
    assert total == 20 * 1_500_000_000
    bad = runner.invoke(app, ["db", "rollup-days", "--since", "yesterday", "--database-url", url])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_db_commands_on_a_database_that_cannot_be_opened_are_one_line_errors(tmp_path: Path) -> None:
    # A process of its own: aiosqlite's connection thread outlives the command's event loop
    # (it may still print its own "Event loop is closed" as the process ends: not checked).
    nowhere = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    for command in ("status", "rollup-days"):
        failed = subprocess.run(
            [
                sys.executable,
                "-c",
                "from spendgate.cli import main; main()",
                "db",
                command,
                "--database-url",
                nowhere,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert failed.returncode == 2, failed.stderr
        assert "error: database error: unable to open database file" in failed.stderr
