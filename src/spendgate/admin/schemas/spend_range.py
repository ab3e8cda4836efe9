"""The range of local days every spend read takes: ``start_date`` / ``end_date`` and ``timezone``.

Why one module: the spend endpoints (``/spend/*``, ``/global/spend*``), the daily activity
endpoints and the export all take LiteLLM's ``YYYY-MM-DD`` dates plus spendgate's IANA
``timezone`` (UTC by default), and must validate them alike: a date or zone that does not
parse, an ``end_date`` before ``start_date`` or a range longer than :data:`MAX_DAYS` is a 422
naming the parameter (:func:`spendgate.admin._http.validation_message` names the field whose
validator raised). Each endpoint's query model derives from :class:`DateRangeQuery` (dates
optional, LiteLLM's default range) or :class:`RequiredDateRangeQuery` and states what differs
as class attributes. :class:`spendgate.admin.spend_range.DayRange` turns a query into the
local days and their UTC boundaries.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from spendgate.admin.schemas.fields import StrictModel
from spendgate.core.periods import get_timezone

__all__ = [
    "DATE",
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "ZONE",
    "DateRangeQuery",
    "Day",
    "RequiredDateRangeQuery",
    "Zone",
    "check_span",
]

DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
"""``YYYY-MM-DD``; which years a read takes is its query's ``FIRST_YEAR`` .. ``LAST_YEAR``."""

ZONE = r"^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$"
"""The shape of an IANA zone name (``UTC``, ``Europe/Berlin``, ``Etc/GMT+5``)."""

DEFAULT_DAYS = 30
"""Without dates, LiteLLM's views cover the last 30 days and today."""

MAX_DAYS = 3660
"""The longest range one request may cover (about ten years of local days)."""


def _date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD") from None
    return value


def _zone(value: str) -> str:
    get_timezone(value)  # ValueError: unknown IANA timezone '…'
    return value


Day = Annotated[
    str,
    Field(
        pattern=DATE,
        description="A local day, YYYY-MM-DD (in `timezone`).",
        examples=["2026-11-01"],
    ),
    AfterValidator(_date),
]
Zone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=ZONE,
        description="An IANA timezone; the days are local days in it.",
        examples=["UTC", "Europe/Berlin", "Asia/Kolkata"],
    ),
    AfterValidator(_zone),
]


def check_span(first: date, last: date, max_days: int | None) -> None:
    """Refuse a range of local days that runs backwards or is longer than ``max_days``.

    Raises:
        ValueError: ``last`` before ``first``, or more than ``max_days`` days (None: no limit).
    """
    if last < first:
        raise ValueError(f"end_date {last.isoformat()} is before start_date {first.isoformat()}")
    if max_days is not None and (last - first).days >= max_days:
        raise ValueError(f"the range covers more than {max_days} days")


class DateRangeQuery(StrictModel):
    """A range of local days ``[start_date, end_date]`` in ``timezone``.

    Without ``start_date``: :attr:`DEFAULT_DAYS` days before today; without ``end_date``:
    today (both in ``timezone``), as LiteLLM's views. A subclass sets :attr:`MAX_DAYS`
    (``None``: no limit), :attr:`DEFAULT_DAYS` and the years it takes.
    """

    DEFAULT_DAYS: ClassVar[int] = DEFAULT_DAYS
    MAX_DAYS: ClassVar[int | None] = MAX_DAYS
    FIRST_YEAR: ClassVar[int] = 1970
    """Rollup reads: the ledger's buckets count from the UNIX epoch."""
    LAST_YEAR: ClassVar[int] = 2999

    start_date: Day | None = None
    end_date: Day | None = None
    timezone: Zone = "UTC"

    @field_validator("start_date", "end_date")
    @classmethod
    def _year(cls, value: str | None) -> str | None:
        if value is not None and not cls.FIRST_YEAR <= int(value[:4]) <= cls.LAST_YEAR:
            raise ValueError(f"{value!r}: the year must be {cls.FIRST_YEAR} to {cls.LAST_YEAR}")
        return value

    @field_validator("end_date")
    @classmethod
    def _span(cls, value: str | None, info: ValidationInfo) -> str | None:
        start = info.data.get("start_date")
        if value is not None and start is not None:  # no start_date: it failed, or defaults
            check_span(date.fromisoformat(start), date.fromisoformat(value), cls.MAX_DAYS)
        return value


class RequiredDateRangeQuery(DateRangeQuery):
    """A range whose two dates are required (a missing one is a 422 naming it)."""

    start_date: Day
    end_date: Day
