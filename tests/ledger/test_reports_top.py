"""``spend_report(top=n)`` on SQLite and PostgreSQL: the n costliest values of the one
dimension grouped by over the whole range keep their rows, every other value is summed per
period into one ``other`` row, and every figure (the kept rows, the other rows, the totals)
equals the raw events to the nano-USD."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ledger_helpers import make_event
from sqlalchemy.ext.asyncio import AsyncEngine
from test_reports_match_events import expected

from spendgate.ledger import reports
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.reports import spend_report
from spendgate.ledger.repository import LedgerRepository

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _events() -> list[SpendEvent]:
    # 12 keys with distinct spend (k00 least … k11 most), two of them tied; teams incl. none.
    return [
        make_event(
            i,
            event_id=f"top-{i}",
            occurred_at=T0 + timedelta(minutes=41 * i),
            cost_nanos=1_000_000 * (1 + i % 12) + (0 if i % 12 in (4, 5) else 7 * (i % 12)),
            api_key=f"k{i % 12:02d}",
            team_id=(f"t{i % 5}" if i % 5 else None),
            user_id=f"u{i % 7}",
            end_user=(f"c{i % 9}" if i % 4 else None),
            model=("m1", "m2", "m3")[i % 3],
        )
        for i in range(12 * 40)  # about two weeks
    ]


@pytest.mark.parametrize(
    ("dim", "granularity", "tz"),
    [
        ("key", "day", "UTC"),
        ("key", "week", "Europe/Berlin"),
        ("key", None, "UTC"),
        ("key", "hour", "UTC"),
        ("key", "day", "Asia/Kolkata"),
        ("team", "day", "Asia/Kolkata"),
        ("customer", "month", "Asia/Kolkata"),
        ("user", "week", "Asia/Kathmandu"),
        ("customer", "day", "America/St_Johns"),
        ("model", None, "UTC"),
    ],
)
async def test_top_groups_and_the_rest_equal_the_events(
    engine: AsyncEngine, dim: str, granularity: str | None, tz: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Local days off UTC midnight of a scope every event has one value of are read by
    # difference from the global rows (reports.top_by_difference): both ways are checked.
    by_difference = []
    real = reports.top_by_difference

    def spy(*args: Any) -> Any:
        by_difference.append(args[3])
        return real(*args)

    monkeypatch.setattr(reports, "top_by_difference", spy)
    events = _events()
    await LedgerRepository(engine).write_batch(events)
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=12)
    for top in (1, 3, 5, 100):
        report = await spend_report(
            engine, start=start, end=end, group_by=[dim], granularity=granularity, tz=tz, top=top
        )
        want = expected(events, [dim], granularity, tz, report.start, report.end)
        by_value: dict[str | None, int] = defaultdict(int)
        for (_, (value,)), figures in want.items():
            by_value[value] += figures[0]
        ranked = sorted(by_value, key=lambda v: (-by_value[v], v or ""))
        kept = set(ranked[:top])
        rest: dict[object, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for (period, (value,)), figures in want.items():
            if value not in kept:
                rest[period] = [a + b for a, b in zip(rest[period], figures, strict=True)]
        cols = report.columns
        got_kept, got_rest = {}, {}
        for row, other in zip(report.rows, cols["other"], strict=True):
            figures = [
                row.totals.cost_nanos,
                row.totals.requests,
                row.totals.input_tokens,
                row.totals.output_tokens,
            ]
            period = row.period.start if row.period else None
            if other:
                assert row.values == (None,)
                got_rest[period] = figures
            else:
                got_kept[(period, row.values)] = figures
        assert got_kept == {k: v for k, v in want.items() if k[1][0] in kept}, (dim, top)
        assert got_rest == dict(rest), (dim, top)
        assert report.other_groups == max(0, len(by_value) - top)
        assert report.totals.cost_nanos == sum(f[0] for f in want.values())
    off_midnight = tz != "UTC" and granularity in ("day", "week", "month")
    assert bool(by_difference) == (off_midnight and dim != "model")


async def test_top_needs_one_dimension(engine: AsyncEngine) -> None:
    for group_by, top in ((["key", "model"], 3), ([], 3), (["key"], 0)):
        with pytest.raises(ValueError, match="top"):
            await spend_report(engine, start=T0, end=T0 + timedelta(days=1), group_by=group_by, top=top)
    empty = await spend_report(engine, start=T0, end=T0 + timedelta(days=1), group_by=["key"], top=3)
    assert (empty.row_count, empty.other_groups, empty.columns["other"]) == (0, 0, [])
