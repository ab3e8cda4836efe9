from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.core.periods import (
    Window,
    get_timezone,
    iter_periods,
    parse_duration,
    parse_window,
    period_for,
)

NOW = datetime(2026, 11, 18, 14, 35, 10, tzinfo=UTC)  # a Wednesday (reference §4.4)


def _z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("duration", "tz", "reset_at"),
    [
        ("1h", "UTC", "2026-11-18T15:00Z"),
        ("1h", "America/New_York", "2026-11-18T10:00-05:00"),
        ("6h", "UTC", "2026-11-18T18:00Z"),
        ("6h", "America/New_York", "2026-11-18T12:00-05:00"),
        ("24h", "UTC", "2026-11-19T00:00Z"),
        ("1d", "UTC", "2026-11-19T00:00Z"),
        ("24h", "America/New_York", "2026-11-19T00:00-05:00"),
        ("7d", "UTC", "2026-11-23T00:00Z"),
        ("1w", "UTC", "2026-11-23T00:00Z"),
        ("30d", "UTC", "2026-12-01T00:00Z"),
        ("1mo", "UTC", "2026-12-01T00:00Z"),
        ("15m", "UTC", "2026-11-18T14:45Z"),
        ("30s", "UTC", "2026-11-18T14:35:30Z"),
        ("hourly", "UTC", "2026-11-18T15:00Z"),
        ("daily", "UTC", "2026-11-19T00:00Z"),
        ("weekly", "UTC", "2026-11-23T00:00Z"),
        ("monthly", "UTC", "2026-12-01T00:00Z"),
    ],
)
def test_litellm_worked_examples(duration: str, tz: str, reset_at: str) -> None:
    period = period_for(duration, NOW, tz)
    assert period.end == _z(reset_at)
    assert NOW in period


def test_n_day_blocks_are_epoch_aligned_not_from_now() -> None:
    # LiteLLM's 2d resets at today's midnight + 2 days; spendgate counts 2-day blocks from
    # Monday 1970-01-05 so the period is a pure function of the clock.
    period = period_for("2d", NOW, "UTC")
    assert period.start == _z("2026-11-17T00:00Z")
    assert period.end == _z("2026-11-19T00:00Z")
    assert period_for("14d", NOW, "UTC").start.weekday() == 0


def test_kolkata_day_starts_at_1830_utc() -> None:
    period = period_for("24h", NOW, "Asia/Kolkata")
    assert period.start == _z("2026-11-17T18:30Z")
    assert period.end == _z("2026-11-18T18:30Z")
    assert period.key == "2026-11-18T00:00:00+05:30"
    assert period_for("1h", NOW, "Asia/Kathmandu").start == _z("2026-11-18T14:15Z")


def test_berlin_dst_days_are_23_and_25_hours() -> None:
    spring = period_for("1d", _z("2026-03-29T12:00Z"), "Europe/Berlin")
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = period_for("1d", _z("2026-10-25T12:00Z"), "Europe/Berlin")
    assert autumn.end - autumn.start == timedelta(hours=25)


def test_berlin_repeated_hour_is_one_period() -> None:
    first = period_for("1h", _z("2026-10-25T00:30Z"), "Europe/Berlin")  # 02:30 CEST
    second = period_for("1h", _z("2026-10-25T01:30Z"), "Europe/Berlin")  # 02:30 CET
    assert first == second
    assert first.end - first.start == timedelta(hours=2)
    skipped = iter_periods("1h", _z("2026-03-29T00:00Z"), _z("2026-03-29T02:00Z"), "Europe/Berlin")
    assert [p.key for p in skipped] == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]


def test_fiscal_quarters_starting_april() -> None:
    window = Window("quarter", fiscal_start_month=4)
    assert period_for(window, _z("2026-03-31T12:00Z"), "UTC").start == _z("2026-01-01T00:00Z")
    q1 = period_for(window, _z("2026-04-01T00:00Z"), "UTC")
    assert (q1.start, q1.end) == (_z("2026-04-01T00:00Z"), _z("2026-07-01T00:00Z"))
    fy = period_for(Window("year", fiscal_start_month=4), _z("2026-02-01T00:00Z"), "UTC")
    assert (fy.start, fy.end) == (_z("2025-04-01T00:00Z"), _z("2026-04-01T00:00Z"))


def test_windows_lifetime_and_rolling() -> None:
    assert period_for("lifetime", NOW).key == "lifetime"
    rolling = period_for(parse_window("rolling:1h"), NOW)
    assert (rolling.start, rolling.end) == (NOW - timedelta(hours=1), NOW)
    assert parse_window("quarter").unit == "quarter"
    assert parse_duration("3mo") == Window("month", 3)
    assert parse_duration("48h") == Window("day", 2)


@pytest.mark.parametrize("bad", ["", "abc", "0d", "-1h", "1y", "25h", "1.5h", "rolling"])
def test_bad_duration_has_litellm_hint(bad: str) -> None:
    with pytest.raises(ValueError, match="Use a format like '1h', '24h', '7d', or '30d'"):
        parse_duration(bad)


def test_naive_datetime_and_unknown_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_for("1d", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown IANA timezone"):
        period_for("1d", NOW, "Mars/Olympus")


ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
WINDOWS = ["1h", "6h", "5h", "1d", "3d", "7d", "2w", "1mo", "3mo", "15m", "7m", "30s", "quarter", "year"]

instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(at=instants, window=st.sampled_from(WINDOWS), tz=st.sampled_from(ZONES))
def test_instant_is_inside_and_periods_tile(at: datetime, window: str, tz: str) -> None:
    period = period_for(window, at, tz)
    assert period.start <= at < period.end
    after = period_for(window, period.end, tz)
    assert after.start == period.end
    before = period_for(window, period.start - timedelta(microseconds=1), tz)
    assert before.end == period.start
    assert period_for(window, period.start, tz) == period


@pytest.mark.parametrize("name", ["America", "Europe/", "Nowhere/Atlantis", "../etc/passwd", ""])
def test_a_name_that_is_no_zone_is_a_value_error(name: str) -> None:
    """A directory of the zone database ("America") or a path is not a zone: ValueError, the
    error callers turn into a 422, never an OSError."""
    with pytest.raises(ValueError, match="unknown IANA timezone"):
        get_timezone(name)
