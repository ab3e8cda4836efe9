"""The ``Alert`` value: what was decided, about whom, for which window and period.

An alert is decided once (its decision row is unique on kind, scope, window, period start
and threshold: :func:`spendgate.alerts.store.record_alert`) and then delivered to each
channel from an outbox. The fields are named so LiteLLM's ``WebhookEvent`` can be filled
from them (:func:`webhook_event`): ``spend``/``max_budget`` from the nano-USD integers,
``token``, ``user_id``, ``team_id``, ``team_alias``, ``user_email``, ``key_alias``,
``customer_id``, ``organization_id``, ``projected_spend``, ``projected_exceeded_date``,
``alert_emails``, ``event``, ``event_group`` and ``event_message``; spendgate's own fields
(window, period, threshold, reset time, exact nano-USD) are added beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, get_args

import orjson

from spendgate.core.money import usd_text

__all__ = [
    "ALERT_GROUPS",
    "KINDS",
    "NO_PERIOD",
    "Alert",
    "AlertKind",
    "threshold_text",
    "webhook_event",
]

AlertKind = Literal[
    "budget_crossed",
    "soft_budget_crossed",
    "projected_exceed",
    "budget_resolved",
    "unpriced_usage",
    "batch_failed",
    "batch_stale",
    "journal_backlog",
    "events_dead_lettered",
    "storage_unreachable",
    "spend_report",
    "test",
]
KINDS: tuple[str, ...] = get_args(AlertKind)

ALERT_GROUPS: Mapping[str, str] = {
    "budget_crossed": "budget_alerts",
    "soft_budget_crossed": "budget_alerts",
    "projected_exceed": "budget_alerts",
    "budget_resolved": "budget_alerts",
    "unpriced_usage": "failed_tracking_spend",
    "journal_backlog": "failed_tracking_spend",
    "events_dead_lettered": "failed_tracking_spend",
    "batch_failed": "batch_alerts",
    "batch_stale": "batch_alerts",
    "storage_unreachable": "db_exceptions",
    "spend_report": "spend_reports",
    "test": "test",
}
"""Each kind's LiteLLM ``alert_types`` name (``batch_alerts`` is spendgate's): an alert is
sent when ``alert_types`` names its kind or its group."""

NO_PERIOD = datetime(1970, 1, 1, tzinfo=UTC)
"""The decision row's period start for an alert outside any period (a lifetime budget, an
operational alert): the unique key's columns are NOT NULL."""

_EVENT_GROUPS = {
    "key": "key",
    "user": "internal_user",
    "team": "team",
    "end_user": "customer",
    "global": "proxy",
    "organization": "organization",
}
_PERCENT = Decimal("0.01")


def threshold_text(threshold: Decimal | None) -> str:
    """The threshold as the decision row stores it: exact decimal text (``"80"``,
    ``"87.5"``), ``""`` for none."""
    if threshold is None:
        return ""
    text = f"{threshold.normalize():f}"
    return text


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. Money is integer nano-USD; times are aware UTC datetimes.

    ``threshold`` is the percent of the limit crossed (``80``), or None for an alert
    without one. ``labels`` carries the identity LiteLLM's payload names (``token``: the
    key's hash, ``user_id``, ``team_id``, ``team_alias``, ``user_email``, ``key_alias``,
    ``customer_id``, ``organization_id``); ``extra`` anything else (JSON-safe).
    """

    kind: AlertKind
    scope_type: str
    scope_id: str
    message: str
    scope_name: str | None = None
    window: str | None = None
    """The budget window (``budget_duration``: ``1d``, ``1mo``); None: lifetime or none."""
    period_start: datetime | None = None
    period_end: datetime | None = None
    threshold: Decimal | None = None
    spend_nanos: int | None = None
    limit_nanos: int | None = None
    soft_limit_nanos: int | None = None
    reset_at: datetime | None = None
    projected_spend_nanos: int | None = None
    projected_exceeded_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r} (one of {', '.join(KINDS)})")
        for name in ("period_start", "period_end", "reset_at", "projected_exceeded_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name}: a naive datetime (give it a timezone)")

    @property
    def group(self) -> str:
        """LiteLLM's alert type of this kind (``budget_alerts`` …)."""
        return ALERT_GROUPS[self.kind]

    @property
    def percent(self) -> Decimal | None:
        """Spend as a percent of the limit, to two places (None without both, or a zero limit)."""
        if self.spend_nanos is None or not self.limit_nanos:
            return None
        return (Decimal(self.spend_nanos) * 100 / Decimal(self.limit_nanos)).quantize(
            _PERCENT, rounding=ROUND_HALF_EVEN
        )

    @property
    def event(self) -> str:
        """LiteLLM's ``event``: ``threshold_crossed`` below 100 %, ``budget_crossed`` at or
        above, ``soft_budget_crossed``, ``projected_limit_exceeded``; else the kind."""
        if self.kind == "budget_crossed":
            if self.threshold is not None and self.threshold < 100:
                return "threshold_crossed"
            return "budget_crossed"
        if self.kind == "projected_exceed":
            return "projected_limit_exceeded"
        return self.kind

    @property
    def event_group(self) -> str:
        """LiteLLM's ``event_group`` (``key``, ``internal_user``, ``team``, ``customer``,
        ``proxy``), else the scope type."""
        return _EVENT_GROUPS.get(self.scope_type, self.scope_type)


def _usd(nanos: int | None) -> Any:
    # A JSON number with the exact decimal digits (never a float's).
    return None if nanos is None else orjson.Fragment(usd_text(nanos).encode())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def webhook_event(alert: Alert, alert_id: str, created_at: datetime) -> dict[str, Any]:
    """The webhook body: LiteLLM's ``WebhookEvent`` fields, then spendgate's.

    USD amounts are JSON numbers with the exact decimal digits of the nano-USD integers
    (which are given too, as ``*_nanos``). Serialise with orjson (the numbers are
    ``orjson.Fragment``).
    """
    labels = alert.labels
    projected = alert.projected_exceeded_at
    body: dict[str, Any] = {
        "event": alert.event,
        "event_group": alert.event_group,
        "event_message": alert.message,
        "spend": _usd(alert.spend_nanos),
        "max_budget": _usd(alert.limit_nanos),
        "soft_budget": _usd(alert.soft_limit_nanos),
        "token": labels.get("token"),
        "customer_id": labels.get("customer_id"),
        "user_id": labels.get("user_id"),
        "team_id": labels.get("team_id"),
        "team_alias": labels.get("team_alias"),
        "organization_id": labels.get("organization_id"),
        "user_email": labels.get("user_email"),
        "key_alias": labels.get("key_alias"),
        "projected_exceeded_date": None if projected is None else projected.date().isoformat(),
        "projected_spend": _usd(alert.projected_spend_nanos),
        "alert_emails": alert.extra.get("alert_emails"),
        # spendgate's
        "alert_id": alert_id,
        "kind": alert.kind,
        "alert_type": alert.group,
        "scope_type": alert.scope_type,
        "scope_id": alert.scope_id,
        "scope_name": alert.scope_name,
        "window": alert.window,
        "period_start": _iso(alert.period_start),
        "period_end": _iso(alert.period_end),
        "threshold_percent": None if alert.threshold is None else threshold_text(alert.threshold),
        "budget_percentage_used": None if alert.percent is None else f"{alert.percent:f}",
        "spend_nanos": alert.spend_nanos,
        "max_budget_nanos": alert.limit_nanos,
        "reset_at": _iso(alert.reset_at),
        "created_at": _iso(created_at),
        "extra": dict(alert.extra),
    }
    return body
