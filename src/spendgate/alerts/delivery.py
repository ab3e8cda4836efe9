"""What one delivery attempt returns, and the human figures every channel shows alike.

A channel's ``send`` never raises for a failed delivery: it returns a :class:`Delivery`
(ok, the HTTP status or SMTP reply code, a short error without secrets), which the sender
job writes to the delivery log. ``summary`` gives the figures (spend, limit, percent, reset
time) once, so Slack, webhooks and email say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from spendgate.alerts.model import Alert, threshold_text
from spendgate.core.money import format_usd

__all__ = ["Delivery", "Figure", "figures", "title"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt."""

    ok: bool
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    value: str


_TITLES = {
    "budget_crossed": "Budget threshold crossed",
    "soft_budget_crossed": "Soft budget crossed",
    "projected_exceed": "Budget projected to be exceeded",
    "budget_resolved": "Budget alert resolved",
    "unpriced_usage": "Unpriced usage",
    "batch_failed": "Batch failed",
    "batch_stale": "Batch stale",
    "journal_backlog": "Spend journal backing up",
    "events_dead_lettered": "Spend events dead-lettered",
    "storage_unreachable": "Storage unreachable",
    "spend_report": "Spend report",
    "test": "Test alert",
}


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_MAX_TITLE = 200


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def title(alert: Alert) -> str:
    """A one-line title: ``Budget 80% crossed: team ml-research (1mo)``."""
    base = _TITLES.get(alert.kind, alert.kind)
    if alert.kind == "budget_crossed" and alert.threshold is not None:
        base = f"Budget {threshold_text(alert.threshold)}% crossed"
    who = alert.scope_name or alert.scope_id
    scope = f"{alert.scope_type} {who}" if alert.scope_type not in ("test", "global") else alert.scope_type
    text = f"{base}: {scope}" + (f" ({alert.window})" if alert.window else "")
    # Scope names come from callers: a CR/LF would make the email Subject refuse every
    # send of this alert, so control characters become a space; one line, capped.
    return _CONTROL.sub(" ", text)[:_MAX_TITLE]


def figures(alert: Alert) -> list[Figure]:
    """Spend, limit, percent, reset time, period and projection, those that are known."""
    out: list[Figure] = []
    if alert.spend_nanos is not None:
        out.append(Figure("Spend", format_usd(alert.spend_nanos)))
    if alert.limit_nanos is not None:
        out.append(Figure("Limit", format_usd(alert.limit_nanos)))
    if alert.soft_limit_nanos is not None:
        out.append(Figure("Soft budget", format_usd(alert.soft_limit_nanos)))
    if alert.percent is not None:
        out.append(Figure("Used", f"{alert.percent:f}%"))
    if alert.threshold is not None:
        out.append(Figure("Threshold", f"{threshold_text(alert.threshold)}%"))
    if alert.reset_at is not None:
        out.append(Figure("Resets", _when(alert.reset_at)))
    if alert.period_start is not None:
        end = f" – {_when(alert.period_end)}" if alert.period_end is not None else ""
        out.append(Figure("Period", _when(alert.period_start) + end))
    if alert.projected_spend_nanos is not None:
        out.append(Figure("Projected", format_usd(alert.projected_spend_nanos)))
    return out
