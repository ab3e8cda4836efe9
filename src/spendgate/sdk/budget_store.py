"""A BudgetManager user's budget as one record, the rules that change it, and what a store
must offer, so the local JSON file and the database apply the very same rules.

A store only decides *where* a record lives and *how* a read-modify-write is made atomic
(a file lock, a locked row); every change is a pure function of the record and the clock,
written once here. Money is integer nano-USD throughout.

Durations (LiteLLM's ``daily`` / ``weekly`` / ``monthly`` / ``yearly``):

* ``calendar=True`` (spendgate's default): the cost belongs to the calendar period of
  :mod:`spendgate.core.periods` (day, week from Monday, month from the 1st, year from
  January 1st) in the record's IANA timezone. A new period starts from zero by the clock
  moving (:func:`roll_period`, applied before every read and write): no reset job.
* ``calendar=False``: LiteLLM's rolling days (daily 1, weekly 7, monthly 28 — or
  ``$DAYS_IN_A_MONTH`` —, yearly 365), reset only when asked (``reset_on_duration``), once
  ``now - last_updated_at >= days × 24 h`` (:func:`rolling_reset_due`), as LiteLLM does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from spendgate.core.periods import Period, Window, period_for

__all__ = [
    "DURATIONS",
    "BudgetRecord",
    "BudgetStore",
    "Held",
    "ReserveOutcome",
    "current_period",
    "days_in_a_month",
    "duration_days",
    "new_record",
    "prepare",
    "reset_at",
    "reset_costs",
    "roll_period",
    "rolling_reset_due",
    "sweep_expired",
]

T = TypeVar("T")

DURATIONS: dict[str, Window] = {
    "daily": Window("day"),
    "weekly": Window("week"),
    "monthly": Window("month"),
    "yearly": Window("year"),
}
"""LiteLLM's duration names → the calendar window each one is in ``calendar`` mode."""


def days_in_a_month() -> int:
    """LiteLLM's ``DAYS_IN_A_MONTH``: 28, or ``$DAYS_IN_A_MONTH``."""
    return int(os.environ.get("DAYS_IN_A_MONTH", "28"))


def duration_days(duration: str) -> int:
    """LiteLLM's day count of a duration name (monthly = :func:`days_in_a_month`).

    Raises:
        ValueError: not one of daily, weekly, monthly, yearly.
    """
    days = {"daily": 1, "weekly": 7, "monthly": days_in_a_month(), "yearly": 365}.get(duration)
    if days is None:
        raise ValueError(
            f"duration must be one of daily, weekly, monthly, yearly (or None), got {duration!r}"
        )
    return days


@dataclass(frozen=True, slots=True)
class Held:
    """One outstanding reservation in a record: its amount and when its lease ends."""

    amount_nanos: int
    expires_at: datetime


@dataclass(slots=True)
class BudgetRecord:
    """One user's budget in one project."""

    total_budget_nanos: int
    duration: str | None
    """``daily`` / ``weekly`` / ``monthly`` / ``yearly``, or None (never resets)."""
    duration_days: int | None
    """LiteLLM's day count of ``duration`` (used when ``calendar`` is False)."""
    calendar: bool
    timezone: str
    created_at: datetime
    last_updated_at: datetime
    """LiteLLM's field: when the costs were last reset by a duration (or created)."""
    period_start: datetime | None
    """Calendar mode: the start of the period the costs belong to."""
    current_cost_nanos: int = 0
    reserved_nanos: int = 0
    model_cost_nanos: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, Held] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (integers and ISO 8601 text only: nothing is rounded)."""
        return {
            "total_budget_nanos": self.total_budget_nanos,
            "duration": self.duration,
            "duration_days": self.duration_days,
            "calendar": self.calendar,
            "timezone": self.timezone,
            "created_at": self.created_at.isoformat(),
            "last_updated_at": self.last_updated_at.isoformat(),
            "period_start": None if self.period_start is None else self.period_start.isoformat(),
            "current_cost_nanos": self.current_cost_nanos,
            "reserved_nanos": self.reserved_nanos,
            "model_cost_nanos": dict(self.model_cost_nanos),
            "reservations": held_to_json(self.reservations),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BudgetRecord:
        """The record :meth:`to_json` wrote."""
        start = data.get("period_start")
        return cls(
            total_budget_nanos=int(data["total_budget_nanos"]),
            duration=data.get("duration"),
            duration_days=data.get("duration_days"),
            calendar=bool(data.get("calendar", True)),
            timezone=str(data.get("timezone") or "UTC"),
            created_at=datetime.fromisoformat(data["created_at"]),
            last_updated_at=datetime.fromisoformat(data["last_updated_at"]),
            period_start=None if start is None else datetime.fromisoformat(start),
            current_cost_nanos=int(data.get("current_cost_nanos", 0)),
            reserved_nanos=int(data.get("reserved_nanos", 0)),
            model_cost_nanos={str(k): int(v) for k, v in (data.get("model_cost_nanos") or {}).items()},
            reservations=held_from_json(data.get("reservations")),
        )


def held_to_json(held: dict[str, Held]) -> dict[str, list[Any]]:
    """Reservations as ``{id: [amount_nanos, expires_at ISO]}``."""
    return {rid: [h.amount_nanos, h.expires_at.isoformat()] for rid, h in held.items()}


def held_from_json(data: dict[str, Any] | None) -> dict[str, Held]:
    """The reservations :func:`held_to_json` wrote."""
    return {rid: Held(int(v[0]), datetime.fromisoformat(v[1])) for rid, v in (data or {}).items()}


def current_period(record: BudgetRecord, now: datetime) -> Period | None:
    """The calendar period ``now`` falls in, for a calendar record with a duration."""
    if record.duration is None or not record.calendar:
        return None
    return period_for(DURATIONS[record.duration], now, record.timezone)


def new_record(
    total_budget_nanos: int, duration: str | None, *, calendar: bool, timezone: str, created_at: datetime
) -> BudgetRecord:
    """A fresh budget, its first period the one ``created_at`` falls in."""
    days = None if duration is None else duration_days(duration)
    record = BudgetRecord(
        total_budget_nanos=total_budget_nanos,
        duration=duration,
        duration_days=days,
        calendar=calendar,
        timezone=timezone,
        created_at=created_at,
        last_updated_at=created_at,
        period_start=None,
    )
    period = current_period(record, created_at)
    record.period_start = None if period is None else period.start
    return record


def reset_costs(record: BudgetRecord) -> None:
    """Zero the current and per-model costs (LiteLLM's ``reset_cost``); reservations stay:
    they are calls in flight."""
    record.current_cost_nanos = 0
    record.model_cost_nanos = {}


def roll_period(record: BudgetRecord, now: datetime) -> bool:
    """Calendar mode: when ``now`` is in a later period than the record's, start the new
    period from zero. True when the record changed."""
    period = current_period(record, now)
    if period is None or (record.period_start is not None and record.period_start >= period.start):
        return False
    reset_costs(record)
    record.period_start = period.start
    record.last_updated_at = now
    return True


def rolling_reset_due(record: BudgetRecord, now: datetime) -> bool:
    """LiteLLM's rule: ``now - last_updated_at >= duration days × 24 h`` (rolling mode)."""
    if record.duration_days is None or record.calendar:
        return False
    return now - record.last_updated_at >= timedelta(days=record.duration_days)


def reset_at(record: BudgetRecord, now: datetime) -> datetime | None:
    """When the costs next start from zero (calendar: the period end; rolling: when a
    reset becomes due); None for a budget without a duration."""
    period = current_period(record, now)
    if period is not None:
        return period.end
    if record.duration_days is None:
        return None
    return record.last_updated_at + timedelta(days=record.duration_days)


def sweep_expired(record: BudgetRecord, now: datetime) -> bool:
    """Drop reservations whose lease has ended (their process crashed or forgot them), so
    they stop holding budget. True when the record changed."""
    expired = [rid for rid, held in record.reservations.items() if held.expires_at <= now]
    for rid in expired:
        record.reserved_nanos = max(0, record.reserved_nanos - record.reservations.pop(rid).amount_nanos)
    return bool(expired)


def prepare(record: BudgetRecord, now: datetime) -> bool:
    """What every read and write applies first: :func:`roll_period`, then
    :func:`sweep_expired`. True when the record changed."""
    rolled = roll_period(record, now)
    return sweep_expired(record, now) or rolled


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    """What :meth:`BudgetStore.reserve` found: whether the amount was reserved, and the
    record as it was decided on (after the reservation when it was made)."""

    reserved: bool
    record: BudgetRecord


class BudgetStore(Protocol):
    """Where a project's budgets live. Every method is atomic across threads and
    processes (and machines, for a database)."""

    def get(self, user: str, now: datetime) -> BudgetRecord | None:
        """The user's record as of ``now`` (its calendar period rolled, not written)."""
        ...

    def all(self, now: datetime) -> dict[str, BudgetRecord]:
        """Every user's record as of ``now``."""
        ...

    def create(self, user: str, record: BudgetRecord, *, replace: bool) -> BudgetRecord:
        """Store a new budget; an existing one is replaced only when ``replace``. Returns the
        record now stored."""
        ...

    def mutate(self, user: str, now: datetime, change: Callable[[BudgetRecord], T]) -> T:
        """Lock the user's record, roll its period and drop expired leases, apply
        ``change`` and write the result, as one atomic step.

        Raises:
            KeyError: the user has no budget.
        """
        ...

    def reserve(self, user: str, reservation_id: str, held: Held, now: datetime) -> ReserveOutcome:
        """Reserve ``held.amount_nanos`` if ``current + reserved + amount <= total``, as one
        atomic conditional step.

        Raises:
            KeyError: the user has no budget.
        """
        ...

    def close(self) -> None:
        """Release files, connections and threads."""
        ...
