"""Calendar periods: the windows budgets, rate limits and reports are counted in.

A budget window is a *period key* computed from the clock in an explicit IANA timezone;
a reset is the clock moving into the next period, so there is no reset job (DESIGN §1.5).

Semantics, per unit (``tz`` is a :class:`zoneinfo.ZoneInfo`):

* ``hour`` × N, ``day``, ``week`` (Monday), ``month`` (1st), ``quarter`` (fiscal start
  month), ``year`` (fiscal start month) follow the **local wall clock**. A local day may
  last 23 or 25 hours. A wall-clock boundary is mapped to an instant with ``fold=0``: a
  boundary that the clock skips (spring forward) maps to the transition instant, and the
  local hour that repeats in autumn is **one** period of two real hours. Each period is
  therefore a pure function of ``(window, instant, tz)`` and consecutive periods tile.
* N-hour blocks start at local midnight (``6h`` → 00, 06, 12, 18); when N does not divide
  24 the last block of the day ends at the next midnight.
* N-day and N-week blocks (other than ``1d`` and ``7d``/``1w``) and N-month blocks where
  N does not divide 12 are not calendar units: they **run from the budget's own start**
  (its *anchor*), counted in whole local calendar days (months) from the local midnight
  (the 1st) of the anchor's date, so a ``90d`` budget set today resets at the local
  midnight 90 days after today (as LiteLLM's first reset). See
  :attr:`Window.runs_from_start`. Without an anchor they are counted from a fixed epoch,
  Monday 1970-01-05 (January 1970 for months). Each period is still a pure function of
  ``(window, instant, tz, anchor)``.
* N-month blocks where N divides 12 are counted from January 1970 (``3mo`` = calendar
  quarters, ``6mo`` = half years).
* Minutes and seconds are fixed-length blocks aligned on the Unix epoch. Every UTC offset
  in use since 1972 is a multiple of 15 minutes, so blocks that divide 15 minutes (1m,
  5m, 15m, 30s…) also start on local wall-clock boundaries in every zone.
* ``rolling`` windows are the last N seconds up to and including the instant; they do not
  tile and have no reset.
* ``lifetime`` is one period covering all time.

LiteLLM duration strings map onto these (reference §4.4): ``Ns`` / ``Nm`` → N-second /
N-minute blocks; ``Nh`` (N < 24) → N-hour blocks from local midnight; ``24h`` and ``1d`` →
the local day; other ``Nd`` → N-day blocks; ``7d`` and ``1w`` → the week from Monday;
other ``Nw`` → 7N-day blocks; ``30d`` and ``1mo`` → the calendar month; ``Nmo`` → N-month
blocks. Aliases: hourly=1h, daily=24h, weekly=7d, monthly=30d; also ``quarterly``,
``yearly``, ``lifetime`` and ``rolling:<duration>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "LIFETIME_END",
    "LIFETIME_START",
    "Period",
    "Window",
    "get_timezone",
    "iter_periods",
    "parse_duration",
    "parse_window",
    "period_for",
]

HINT = "Use a format like '1h', '24h', '7d', or '30d'"
UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year", "rolling", "lifetime")

# Monday. N-day and N-week blocks are counted from here in local calendar days.
_DAY_EPOCH = date(1970, 1, 5)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIFETIME_START = _UNIX_EPOCH
LIFETIME_END = datetime(9999, 12, 31, tzinfo=UTC)

_ALIASES = {
    "hourly": "1h",
    "daily": "24h",
    "weekly": "7d",
    "monthly": "30d",
    "quarterly": "3mo",
    "yearly": "12mo",
    "annually": "12mo",
}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(mo|s|m|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Window:
    """A kind of period: a unit, a count of units, and a fiscal start month.

    ``count`` is the block length in units (``Window("hour", 6)`` is 6-hour blocks);
    for ``rolling`` it is the length in seconds. ``fiscal_start_month`` only matters for
    ``quarter`` and ``year``.
    """

    unit: str
    count: int = 1
    fiscal_start_month: int = 1

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown window unit {self.unit!r}; expected one of {', '.join(UNITS)}")
        if self.count < 1:
            raise ValueError(f"a window must be longer than zero, got {self.count} {self.unit}. {HINT}")
        if not 1 <= self.fiscal_start_month <= 12:
            raise ValueError(f"fiscal_start_month must be 1..12, got {self.fiscal_start_month}")
        if self.unit == "hour" and self.count > 24:
            raise ValueError(f"hour blocks longer than a day are not supported ({self.count}h). {HINT}")

    @property
    def name(self) -> str:
        """A short canonical spelling, e.g. ``1d``, ``6h``, ``1mo``, ``rolling:3600s``."""
        short = {"second": "s", "minute": "m", "hour": "h", "day": "d", "month": "mo"}
        if self.unit in short:
            return f"{self.count}{short[self.unit]}"
        if self.unit == "week":
            return f"{self.count}w"
        if self.unit in ("quarter", "year"):
            suffix = "" if self.fiscal_start_month == 1 else f"@{self.fiscal_start_month}"
            return f"{self.unit}{suffix}"
        if self.unit == "rolling":
            return f"rolling:{self.count}s"
        return "lifetime"

    @property
    def is_calendar(self) -> bool:
        """True for windows that tile time (everything but ``rolling``)."""
        return self.unit != "rolling"

    @property
    def runs_from_start(self) -> bool:
        """True for block lengths that are no calendar unit (``2d``, ``45d``, ``90d``, ``2w``,
        ``5mo``): their periods are counted from an anchor (the budget's start)."""
        unit, n = self.unit, self.count
        return (unit in ("day", "week") and n != 1) or (unit == "month" and 12 % n != 0)


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a window: ``[start, end)`` as UTC instants, and a stable key.

    The key is the period's local start in ISO 8601 with its UTC offset, so it is unique
    and readable (``2026-11-18T00:00:00-05:00``).
    """

    start: datetime
    end: datetime
    key: str

    def __contains__(self, at: object) -> bool:
        return isinstance(at, datetime) and self.start <= at < self.end


def parse_duration(text: str) -> Window:
    """Map a LiteLLM ``budget_duration`` string onto a calendar window (see module doc).

    Raises:
        ValueError: the string is empty, zero, negative or not a duration; the message
            carries LiteLLM's hint.
    """
    raw = text
    text = _ALIASES.get(text.strip().lower(), text.strip().lower())
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"Invalid budget_duration {raw!r}. {HINT}")
    n, unit = int(match[1]), match[2]
    if n <= 0:
        raise ValueError(f"Invalid budget_duration {raw!r}: must be greater than zero. {HINT}")
    if unit == "s":
        return Window("second", n)
    if unit == "m":
        return Window("minute", n)
    if unit == "h":
        if n == 24:
            return Window("day")
        if n < 24:
            return Window("hour", n)
        if n % 24 == 0:
            return parse_duration(f"{n // 24}d")
        raise ValueError(f"Invalid budget_duration {raw!r}: hours above 24 must be whole days. {HINT}")
    if unit == "d":
        if n == 7:
            return Window("week")
        if n == 30:
            return Window("month")
        return Window("day", n)
    if unit == "w":
        return Window("week", n)
    return Window("month", n)


def parse_window(text: str, *, fiscal_start_month: int = 1) -> Window:
    """Parse a duration string or a named window.

    Accepts everything :func:`parse_duration` does, plus ``hour``, ``day``, ``week``,
    ``month``, ``quarter``, ``year``, ``lifetime`` and ``rolling:<duration>`` (e.g.
    ``rolling:30d`` = the last 30×24 hours).
    """
    key = text.strip().lower()
    if key in ("hour", "day", "week", "month", "quarter", "year", "lifetime"):
        return Window(key, 1, fiscal_start_month)
    if key in ("quarterly",):
        return Window("quarter", 1, fiscal_start_month)
    if key in ("yearly", "annually"):
        return Window("year", 1, fiscal_start_month)
    if key.startswith("rolling:"):
        match = _DURATION_RE.match(key.removeprefix("rolling:"))
        if match is None or match[2] == "mo" or int(match[1]) <= 0:
            raise ValueError(
                f"Invalid rolling window {text!r}. Use a format like 'rolling:1h' or 'rolling:30d'"
            )
        return Window("rolling", int(match[1]) * _SECONDS[match[2]])
    return parse_duration(text)


def get_timezone(name: str | tzinfo | None) -> tzinfo:
    """An IANA zone by name (``None`` → UTC). Unknown names raise ``ValueError``."""
    if name is None:
        return UTC
    if isinstance(name, tzinfo):
        return name
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory: OSError
        raise ValueError(f"unknown IANA timezone {name!r}") from None


def period_for(
    window: Window | str,
    at: datetime,
    tz: tzinfo | str | None = None,
    anchor: datetime | None = None,
) -> Period:
    """The period of ``window`` that contains the instant ``at``, in timezone ``tz``.

    ``at`` must be timezone-aware. The result's ``start`` and ``end`` are UTC. ``anchor``
    (aware) is the budget's start: windows that :attr:`~Window.runs_from_start` count their
    blocks from its local date (its month); other windows ignore it.
    """
    if isinstance(window, str):
        window = parse_window(window)
    if at.tzinfo is None:
        raise ValueError("period_for needs a timezone-aware datetime")
    zone = get_timezone(tz)
    unit, n = window.unit, window.count
    if unit == "lifetime":
        return Period(LIFETIME_START, LIFETIME_END, "lifetime")
    if unit == "rolling":
        end = at.astimezone(UTC)
        return Period(end - timedelta(seconds=n), end, f"rolling:{end.isoformat()}")
    if unit in ("second", "minute"):
        step = n * (1 if unit == "second" else 60)
        micros = _epoch_micros(at)
        start_us = micros - micros % (step * 1_000_000)
        start = _UNIX_EPOCH + timedelta(microseconds=start_us)
        return _period(start, start + timedelta(seconds=step), zone)

    local = at.astimezone(zone).replace(tzinfo=None)
    origin = _DAY_EPOCH
    month_origin = 0
    if anchor is not None and window.runs_from_start:
        if anchor.tzinfo is None:
            raise ValueError("a period anchor must be a timezone-aware datetime")
        origin = anchor.astimezone(zone).date()
        month_origin = (origin.year - 1970) * 12 + origin.month - 1
    start_wall: datetime
    end_wall: datetime
    if unit == "hour":
        day = datetime.combine(local.date(), datetime.min.time())
        block = local.hour // n * n
        start_wall = day + timedelta(hours=block)
        end_wall = min(day + timedelta(hours=block + n), day + timedelta(days=1))
    elif unit in ("day", "week"):
        days = n if unit == "day" else 7 * n
        idx = (local.date() - origin).days // days * days
        first = origin + timedelta(days=idx)
        start_wall = datetime.combine(first, datetime.min.time())
        end_wall = start_wall + timedelta(days=days)
    else:
        months = {"month": n, "quarter": 3, "year": 12}[unit]
        offset = month_origin % months if unit == "month" else window.fiscal_start_month - 1
        index = (local.year - 1970) * 12 + local.month - 1 - offset
        first_month = index - index % months + offset
        start_wall = _month_start(first_month)
        end_wall = _month_start(first_month + months)
    return _period(_wall_to_utc(start_wall, zone), _wall_to_utc(end_wall, zone), zone)


def iter_periods(
    window: Window | str,
    start: datetime,
    end: datetime,
    tz: tzinfo | str | None = None,
    anchor: datetime | None = None,
) -> list[Period]:
    """The consecutive periods of a calendar window that overlap ``[start, end)``."""
    if isinstance(window, str):
        window = parse_window(window)
    if not window.is_calendar:
        raise ValueError("rolling windows do not tile; iterate calendar windows only")
    out: list[Period] = []
    at = start
    while at < end:
        period = period_for(window, at, tz, anchor)
        out.append(period)
        if period.end >= LIFETIME_END:
            break
        at = period.end
    return out


def _month_start(months_since_1970: int) -> datetime:
    return datetime(1970 + months_since_1970 // 12, months_since_1970 % 12 + 1, 1)


def _wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _epoch_micros(at: datetime) -> int:
    delta = at.astimezone(UTC) - _UNIX_EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _period(start: datetime, end: datetime, zone: tzinfo) -> Period:
    return Period(start, end, start.astimezone(zone).isoformat())
