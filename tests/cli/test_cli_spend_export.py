"""``spendgate spend export``: the same rows as the endpoint, read from the database
directly, to a file or stdout; sums equal the ledger in three zones; bad arguments are a
one-line error and write no file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from export_helpers import DAYS, ZONES, fill, in_range, known_events, read_csv
from spendgate.cli import _register, app
from spendgate.core.money import from_nano
from spendgate.ledger.exports import day_range
from spendgate.stores.database import create_engine, upgrade

runner = CliRunner()
_register()
KNOWN = known_events()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('export') / 'ledger.db'}"

    async def main() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            await fill(engine, KNOWN)
        finally:
            await engine.dispose()

    asyncio.run(main())
    yield url


@pytest.mark.parametrize("tz", ZONES)
def test_focus_to_a_file_equals_the_ledger(db_url: str, tmp_path: Path, tz: str) -> None:
    out = tmp_path / "focus.csv"
    since, until = DAYS[0].isoformat(), date(2026, 11, 19).isoformat()  # the local day 18th
    result = runner.invoke(
        app,
        [
            "spend",
            "export",
            "--format",
            "focus",
            "--since",
            since,
            "--until",
            until,
            "--tz",
            tz,
            "-o",
            str(out),
            "--database-url",
            db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    _, rows = read_csv(out.read_bytes())
    expected = in_range(KNOWN, *day_range(*DAYS, tz))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == from_nano(sum(k.event.cost_nanos for k in expected))


def test_csv_and_grouped_to_stdout(db_url: str) -> None:
    args = ["--since", "2026-11-17", "--until", "2026-11-20", "--database-url", db_url]
    result = runner.invoke(app, ["spend", "export", *args])
    assert result.exit_code == 0, result.output
    _, rows = read_csv(result.stdout_bytes)
    assert [r["request_id"] for r in rows] == [k.event.event_id for k in KNOWN]
    grouped = runner.invoke(app, ["spend", "export", "--group-by", "team", *args])
    assert grouped.exit_code == 0, grouped.output
    _, rows = read_csv(grouped.stdout_bytes)
    assert sum(int(r["cost_nanos"]) for r in rows) == sum(k.event.cost_nanos for k in KNOWN)


def test_bad_arguments_fail_without_a_file(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "never.csv"
    for extra, message in (
        (["--format", "xml"], "unknown format"),
        (["--format", "focus", "--group-by", "team"], "group_by"),
        (["--tz", "Mars/Olympus"], "unknown IANA timezone"),
        (["--since", "2026-11-20", "--until", "2026-11-19"], "--until must be after --since"),
    ):
        result = runner.invoke(app, ["spend", "export", "-o", str(out), "--database-url", db_url, *extra])
        assert result.exit_code != 0, extra
        assert message in result.output, (extra, result.output)
        assert not out.exists()
