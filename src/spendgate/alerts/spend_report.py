"""A scheduled spend report as a value: what one (report, period, scope) summary says.

The report scheduler (:mod:`spendgate.jobs.report_scheduler`) builds a :class:`SpendReport`
from the rollups once a period has ended and records it as an alert of kind
``spend_report`` (:meth:`SpendReport.alert`): the decision row's unique key (kind, scope,
*window* = the report's name, period start) makes it once per (report, scope, period)
across instances, and the outbox delivers it like any alert. The summary travels in the
alert's ``extra["report"]`` as JSON (:meth:`SpendReport.to_json`), so the channels
(:mod:`spendgate.alerts.report_message`) and a webhook receiver read the same figures.

Money is integer nano-USD; the JSON carries each amount twice, as ``*_nanos`` and as exact
USD text (``usd_text``). Percentages are exact decimals rounded half-even to one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from spendgate.alerts.model import Alert
from spendgate.core.money import format_usd, usd_text
from spendgate.core.periods import get_timezone

__all__ = ["FREQUENCIES", "Breakdown", "BudgetLine", "ReportLine", "SpendReport", "percent_of", "report_of"]

FREQUENCIES = ("daily", "weekly", "monthly")
_NOUN = {"daily": "day", "weekly": "week", "monthly": "month"}
_ONE_PLACE = Decimal("0.1")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def percent_of(part: int, whole: int) -> Decimal | None:
    """``part`` as a percent of ``whole`` to one place (None for a zero whole)."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(_ONE_PLACE, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One row of a breakdown: a model, key or team and what it spent in the period."""

    id: str
    """The model name, key id or team id (``""``: none, e.g. spend without a team)."""
    name: str
    """What people read: the alias, else the id."""
    spend_nanos: int
    requests: int
    total_tokens: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "spend_nanos": self.spend_nanos,
            "spend": usd_text(self.spend_nanos),
            "requests": self.requests,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportLine:
        return cls(data["id"], data["name"], data["spend_nanos"], data["requests"], data["total_tokens"])


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The top ``lines`` of one dimension, and what the rows left out add up to."""

    dimension: str
    """``model``, ``key`` or ``team``."""
    lines: tuple[ReportLine, ...]
    rest_count: int = 0
    rest_spend_nanos: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "top": [line.to_json() for line in self.lines],
            "rest_count": self.rest_count,
            "rest_spend_nanos": self.rest_spend_nanos,
            "rest_spend": usd_text(self.rest_spend_nanos),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Breakdown:
        lines = tuple(ReportLine.from_json(line) for line in data["top"])
        return cls(data["dimension"], lines, data["rest_count"], data["rest_spend_nanos"])


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """A budget's use at the end of the report's period: the spend in the budget's own
    period that holds the report period's last instant, counted up to the report's end."""

    scope_type: str
    scope_id: str
    name: str
    window: str
    """The ``budget_duration`` (``1mo``) or ``lifetime``."""
    period_start: datetime
    period_end: datetime | None
    """None for a lifetime budget."""
    spend_nanos: int
    limit_nanos: int

    @property
    def percent(self) -> Decimal | None:
        return percent_of(self.spend_nanos, self.limit_nanos)

    def to_json(self) -> dict[str, Any]:
        percent = self.percent
        return {
            "scope_type": self.scope_type,
            "scope_id": self.scope_id,
            "name": self.name,
            "window": self.window,
            "period_start": self.period_start.isoformat(),
            "period_end": None if self.period_end is None else self.period_end.isoformat(),
            "spend_nanos": self.spend_nanos,
            "spend": usd_text(self.spend_nanos),
            "max_budget_nanos": self.limit_nanos,
            "max_budget": usd_text(self.limit_nanos),
            "percent": None if percent is None else f"{percent:f}",
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetLine:
        end = data["period_end"]
        return cls(
            data["scope_type"],
            data["scope_id"],
            data["name"],
            data["window"],
            datetime.fromisoformat(data["period_start"]),
            None if end is None else datetime.fromisoformat(end),
            data["spend_nanos"],
            data["max_budget_nanos"],
        )


@dataclass(frozen=True, slots=True)
class SpendReport:
    """One report of one scope over one period ``[period_start, period_end)`` (aware UTC)."""

    name: str
    frequency: str
    timezone: str
    scope_type: str
    """``global`` or ``team``."""
    scope_id: str
    """The team id; ``""`` for the global report."""
    scope_name: str | None
    period_start: datetime
    period_end: datetime
    spend_nanos: int
    requests: int
    failed_requests: int
    input_tokens: int
    output_tokens: int
    previous_spend_nanos: int
    previous_requests: int
    breakdowns: tuple[Breakdown, ...] = ()
    budgets: tuple[BudgetLine, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def change_percent(self) -> Decimal | None:
        """Spend against the previous period, in percent (None when that was zero)."""
        if not self.previous_spend_nanos:
            return None
        return percent_of(self.spend_nanos - self.previous_spend_nanos, self.previous_spend_nanos)

    @property
    def noun(self) -> str:
        """``day``, ``week`` or ``month``."""
        return _NOUN[self.frequency]

    @property
    def period_label(self) -> str:
        """The period in local dates: ``2026-12-05``, ``2026-11-30 – 2026-12-06``, ``2026-12``."""
        zone = get_timezone(self.timezone)
        first = self.period_start.astimezone(zone).date()
        last = (self.period_end.astimezone(zone) - timedelta(microseconds=1)).date()
        if self.frequency == "monthly":
            return f"{first:%Y-%m}"
        if self.frequency == "weekly":
            return f"{first.isoformat()} – {last.isoformat()}"
        return first.isoformat()

    @property
    def who(self) -> str:
        """``global`` or ``team <name>``."""
        return "global" if self.scope_type == "global" else f"team {self.scope_name or self.scope_id}"

    @property
    def title(self) -> str:
        """``Daily spend report: team Alpha, 2026-12-05``: one line (a team alias with a CR/LF
        would break the email Subject), at most 200 characters."""
        text = f"{self.frequency.capitalize()} spend report: {self.who}, {self.period_label}"
        return _CONTROL.sub(" ", text)[:200]

    @property
    def change_text(self) -> str:
        """``+12.5% vs the previous day ($8.00)``, or why there is no percent."""
        previous = format_usd(self.previous_spend_nanos)
        change = self.change_percent
        if change is None:
            return f"no spend in the previous {self.noun}"
        sign = "+" if change > 0 else ""
        return f"{sign}{change:f}% vs the previous {self.noun} ({previous})"

    @property
    def message(self) -> str:
        """One line: the period, the spend, the requests and the change."""
        who = self.who[:1].upper() + self.who[1:]  # not str.capitalize: it lowercases the alias
        return (
            f"{who} spent {format_usd(self.spend_nanos)} over {self.requests} requests "
            f"on {self.period_label} ({self.timezone}); {self.change_text}."
        )

    def to_json(self) -> dict[str, Any]:
        change = self.change_percent
        return {
            "name": self.name,
            "frequency": self.frequency,
            "timezone": self.timezone,
            "scope_type": self.scope_type,
            "scope_id": self.scope_id,
            "scope_name": self.scope_name,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "period_label": self.period_label,
            "spend_nanos": self.spend_nanos,
            "spend": usd_text(self.spend_nanos),
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "previous_spend_nanos": self.previous_spend_nanos,
            "previous_spend": usd_text(self.previous_spend_nanos),
            "previous_requests": self.previous_requests,
            "change_percent": None if change is None else f"{change:f}",
            "breakdowns": [b.to_json() for b in self.breakdowns],
            "budgets": [b.to_json() for b in self.budgets],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> SpendReport:
        return cls(
            name=data["name"],
            frequency=data["frequency"],
            timezone=data["timezone"],
            scope_type=data["scope_type"],
            scope_id=data["scope_id"],
            scope_name=data["scope_name"],
            period_start=datetime.fromisoformat(data["period_start"]),
            period_end=datetime.fromisoformat(data["period_end"]),
            spend_nanos=data["spend_nanos"],
            requests=data["requests"],
            failed_requests=data["failed_requests"],
            input_tokens=data["input_tokens"],
            output_tokens=data["output_tokens"],
            previous_spend_nanos=data["previous_spend_nanos"],
            previous_requests=data["previous_requests"],
            breakdowns=tuple(Breakdown.from_json(b) for b in data["breakdowns"]),
            budgets=tuple(BudgetLine.from_json(b) for b in data["budgets"]),
            labels=dict(labels or {}),
        )

    def alert(self) -> Alert:
        """The alert that carries this report: once per (name, scope, period) — the report's
        name is the decision row's ``window``."""
        return Alert(
            kind="spend_report",
            scope_type=self.scope_type,
            scope_id=self.scope_id,
            scope_name=self.scope_name,
            message=self.message,
            window=self.name,
            period_start=self.period_start,
            period_end=self.period_end,
            spend_nanos=self.spend_nanos,
            labels=dict(self.labels),
            extra={"report": self.to_json()},
        )


def report_of(alert: Alert) -> SpendReport | None:
    """The report an alert of kind ``spend_report`` carries (None for any other alert)."""
    data = alert.extra.get("report") if alert.kind == "spend_report" else None
    return None if not isinstance(data, Mapping) else SpendReport.from_json(data, alert.labels)
