"""The local days a spend read covers (:class:`DayRange`), from its :class:`DateRangeQuery`.

Why one class: every spend read (the spend endpoints, daily activity, the export) turns its
``start_date`` / ``end_date`` / ``timezone`` into the same things: the local days, the
default range when a date is left out, and the UTC boundaries ``[start, end)`` of those days
(:mod:`spendgate.ledger.local_days`, DST-correct). A range that runs backwards or is too
long is a 422 naming ``end_date``, wherever the dates came from (given, or defaulted from
today in the zone).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import cached_property

from spendgate.admin.schemas.spend_range import DateRangeQuery, check_span
from spendgate.core.periods import get_timezone
from spendgate.http.errors import InvalidField
from spendgate.ledger.local_days import day_start

__all__ = ["DayRange"]


def _instant(make: Callable[[], datetime], param: str) -> datetime:
    """A day boundary; one outside the calendar (year 1 east of UTC, after 9999-12-31) is a 422."""
    try:
        return make()
    except OverflowError:
        raise InvalidField(f"{param}: the day is at the edge of the calendar", param=param) from None


class DayRange:
    """Local days ``first..last`` in ``tz``, and their UTC boundaries ``[start, end)``."""

    def __init__(self, q: DateRangeQuery, now: datetime) -> None:
        """The range of ``q``; a missing date defaults from ``now``'s local day in its zone.

        Raises:
            InvalidField: the range runs backwards or is longer than ``q.MAX_DAYS``, or a
                boundary falls outside the calendar in UTC.
        """
        self.tz = q.timezone
        self.zone = get_timezone(q.timezone)
        today = now.astimezone(self.zone).date()
        self.first = (
            date.fromisoformat(q.start_date) if q.start_date else today - timedelta(days=q.DEFAULT_DAYS)
        )
        self.last = date.fromisoformat(q.end_date) if q.end_date else today
        try:
            check_span(self.first, self.last, q.MAX_DAYS)
        except ValueError as exc:
            raise InvalidField(f"end_date: {exc}", param="end_date") from None
        self.start = _instant(lambda: day_start(self.first, self.zone), "start_date")
        self.end = _instant(lambda: day_start(self.last + timedelta(days=1), self.zone), "end_date")

    def __len__(self) -> int:
        """How many local days the range covers."""
        return (self.last - self.first).days + 1

    @cached_property
    def days(self) -> list[date]:
        """Every local day of the range, in order."""
        return [self.first + timedelta(days=i) for i in range(len(self))]

    @cached_property
    def boundaries(self) -> list[datetime]:
        """The UTC start of each day, then the end of the last one (``len(days) + 1``)."""
        return [day_start(d, self.zone) for d in self.days] + [self.end]

    def local_start(self, day: date) -> str:
        """The local start of ``day`` in ISO 8601 with its offset (LiteLLM's ``group_by_day``)."""
        return day_start(day, self.zone).astimezone(self.zone).isoformat()
