"""A report's statement is compiled once per structure and run with each call's own values
(``reports._compiled`` on PostgreSQL; SQLAlchemy's own statement cache on SQLite): the same
shape of report over other ranges, zones and ids answers exactly as a statement compiled
afresh for it, and the second call of a shape compiles nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.ledger import reports
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 5, 1, tzinfo=UTC)


async def _filled(engine: AsyncEngine) -> None:
    events = [
        make_event(
            i,
            event_id=f"cc-{i}",
            occurred_at=T0 + timedelta(minutes=37 * i),
            cost_nanos=1_000_003 * (1 + i % 11) + i,
            api_key=f"k{i % 11:02d}",
            team_id=f"t{i % 4}",
            model=("m1", "m2")[i % 2],
        )
        for i in range(900)  # about 23 days
    ]
    await LedgerRepository(engine).write_batch(events)


def _rows(report: Any) -> list[Any]:
    return sorted(
        (
            tuple(sorted((k, v or "") for k, v in r.group.items())),
            r.period.start if r.period else None,
            r.totals,
        )
        for r in report.rows
    )


@pytest.mark.parametrize(
    ("group_by", "granularity", "top", "scope_ids"),
    [
        (["key"], "day", 3, None),
        (["team", "model"], "hour", None, None),
        (["key"], "week", None, ["k01", "k05", "k07"]),
    ],
)
async def test_a_kept_statement_runs_with_each_calls_values(
    engine: AsyncEngine, group_by: list[str], granularity: str, top: int | None, scope_ids: Any
) -> None:
    await _filled(engine)
    calls = [
        (T0 + timedelta(days=1), T0 + timedelta(days=8), "Asia/Kolkata"),
        (T0 + timedelta(days=9), T0 + timedelta(days=16), "Asia/Kolkata"),  # same shape, other days
        (T0 + timedelta(days=3), T0 + timedelta(days=10), "Asia/Kathmandu"),  # other offsets
    ]
    shape = {"group_by": group_by, "granularity": granularity, "top": top, "scope_ids": scope_ids}
    compiled: list[int] = []
    real = reports.SQLCompiler.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        compiled.append(1)
        real(self, *args, **kwargs)

    reports._COMPILED.clear()
    kept = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reports.SQLCompiler, "__init__", counting)
        for start, end, tz in calls:
            before = len(compiled)
            kept.append(_rows(await spend_report(engine, start=start, end=end, tz=tz, **shape)))
            if (start, tz) == calls[1][::2]:  # the second call of the first shape compiles nothing
                assert len(compiled) == before
    fresh = []
    for start, end, tz in calls:
        reports._COMPILED.clear()
        fresh.append(_rows(await spend_report(engine, start=start, end=end, tz=tz, **shape)))
    assert kept == fresh
    assert all(kept) and kept[0] != kept[1]
