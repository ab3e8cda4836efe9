"""Local calendar days as UTC instants: the one place a spend read's day boundaries are made.

Why its own module: the spend endpoints, the daily activity reads and the exports all
answer for local days in an IANA zone, and a day's boundaries must be the same everywhere
(the start of a local day is its real local midnight, DST-correct: where midnight does not
exist, the first instant of the day; where it happens twice, the first one), exactly as
:func:`spendgate.core.periods.period_for` starts a ``day`` period.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from spendgate.core.periods import get_timezone

__all__ = ["day_range", "day_start"]


def day_start(day: date, tz: str | tzinfo) -> datetime:
    """The UTC instant the local ``day`` starts at in ``tz``."""
    return datetime.combine(day, time(), get_timezone(tz)).astimezone(UTC)


def day_range(start_date: date, end_date: date, tz: str | tzinfo) -> tuple[datetime, datetime]:
    """``[start_date 00:00, end_date + 1 day 00:00)`` in local time of ``tz``, as UTC instants.

    Raises:
        ValueError: ``end_date`` before ``start_date``, or a date the calendar cannot
            extend by a day (9999-12-31).
        OverflowError: a date too close to the calendar's ends to convert.
    """
    if end_date < start_date:
        raise ValueError("end_date is before start_date")
    zone = get_timezone(tz)
    end_day = end_date + timedelta(days=1)  # OverflowError at 9999-12-31
    return day_start(start_date, zone), day_start(end_day, zone)
