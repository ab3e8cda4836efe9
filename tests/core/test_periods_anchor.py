"""Periods of durations that are no calendar unit run from the budget's start (issue #17 item 3)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from spendgate.core.periods import iter_periods, parse_duration, period_for

NY = "America/New_York"
START = datetime(2026, 3, 5, 17, 30, tzinfo=UTC)  # 12:30 in New York, before the DST change


@pytest.mark.parametrize(
    ("duration", "runs_from_start"),
    [
        ("1d", False), ("24h", False), ("7d", False), ("1w", False), ("30d", False), ("1mo", False),
        ("3mo", False), ("6mo", False), ("12mo", False), ("6h", False), ("30s", False),
        ("2d", True), ("45d", True), ("90d", True), ("48h", True), ("2w", True), ("5mo", True),
    ],
)  # fmt: skip
def test_which_windows_run_from_start(duration: str, runs_from_start: bool) -> None:
    assert parse_duration(duration).runs_from_start is runs_from_start


def test_90d_runs_from_the_local_midnight_of_its_start() -> None:
    p = period_for("90d", START, NY, anchor=START)
    assert p.start == datetime(2026, 3, 5, 5, tzinfo=UTC)  # midnight EST
    assert p.end == datetime(2026, 6, 3, 4, tzinfo=UTC)  # midnight EDT, 90 local days on
    nxt = period_for("90d", p.end, NY, anchor=START)
    assert nxt.start == p.end and nxt.key != p.key
    before = period_for("90d", datetime(2026, 3, 4, 12, tzinfo=UTC), NY, anchor=START)
    assert before.end == p.start  # an instant before the start falls in the block before


def test_without_an_anchor_blocks_count_from_the_epoch_and_calendar_windows_ignore_it() -> None:
    assert period_for("90d", START, NY) != period_for("90d", START, NY, anchor=START)
    for duration in ("1d", "7d", "1mo", "3mo", "6h"):
        assert period_for(duration, START, NY) == period_for(duration, START, NY, anchor=START)


def test_2w_and_5mo_from_their_start() -> None:
    p = period_for("2w", START, NY, anchor=START)
    assert (p.start, p.end) == (datetime(2026, 3, 5, 5, tzinfo=UTC), datetime(2026, 3, 19, 4, tzinfo=UTC))
    months = period_for("5mo", datetime(2026, 9, 1, tzinfo=UTC), NY, anchor=START)
    assert months.start == datetime(2026, 8, 1, 4, tzinfo=UTC)  # 1 March + 5 months, EDT
    assert months.end == datetime(2027, 1, 1, 5, tzinfo=UTC)


def test_anchored_periods_tile() -> None:
    periods = iter_periods("45d", START, datetime(2027, 3, 5, tzinfo=UTC), NY, anchor=START)
    assert all(a.end == b.start for a, b in pairwise(periods))
    assert periods[0].start.astimezone(UTC) == datetime(2026, 3, 5, 5, tzinfo=UTC)


def test_a_naive_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_for("90d", START, NY, anchor=datetime(2026, 3, 5))
