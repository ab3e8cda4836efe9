"""A budget limit as a stored reservation keeps it (JSON-safe values).

A batch's reservation is stored when the batch is created and settled hours later,
maybe by another instance, from :meth:`~spendgate.enforcement.reservation.Reservation.from_json`.
Its storage operations say what to charge; the limits they were planned from say what the
charge means: the scope, the window and its calendar, the soft limit and the alert
thresholds that budget crossing detection (:mod:`spendgate.enforcement.crossings`) compares
the spend with. Kept here, a batch's settlement is checked for crossings as a request's is,
against the limits as they stood when the batch was admitted (as a request's settle is).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from spendgate.core.periods import Window
from spendgate.core.scopes import Scope
from spendgate.enforcement.limits import BudgetLimit

__all__ = ["limit_from_json", "limit_to_json"]


def limit_to_json(limit: BudgetLimit) -> dict[str, Any]:
    """``limit`` as JSON-safe values (amounts as integers, instants and thresholds as text)."""
    window = limit.window
    return {
        "scope": [limit.scope.type, limit.scope.id],
        "window": [window.unit, window.count, window.fiscal_start_month],
        "max": limit.max_nanos,
        "soft": limit.soft_nanos,
        "tz": limit.tz,
        "temp": limit.temp_increase_nanos,
        "temp_expiry": None if limit.temp_expiry is None else limit.temp_expiry.isoformat(),
        "thresholds": [str(t) for t in limit.alert_thresholds],
        "anchor": None if limit.anchor is None else limit.anchor.isoformat(),
        "main": limit.main,
    }


def limit_from_json(data: Any) -> BudgetLimit:
    """The limit :func:`limit_to_json` described.

    Raises:
        ValueError: ``data`` is not what :func:`limit_to_json` returns.
    """
    try:
        scope_type, scope_id = data["scope"]
        unit, count, fiscal = data["window"]
        return BudgetLimit(
            Scope(_of(scope_type, str), _of(scope_id, str)),
            Window(_of(unit, str), _of(count, int), _of(fiscal, int)),
            _optional_int(data["max"]),
            _optional_int(data["soft"]),
            None if data["tz"] is None else _of(data["tz"], str),
            _of(data["temp"], int),
            _instant(data["temp_expiry"]),
            tuple(Decimal(_of(t, str)) for t in data["thresholds"]),
            _instant(data["anchor"]),
            _of(data["main"], bool),
        )
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"a stored budget limit is malformed ({exc!r})") from None


def _of(value: Any, kind: type[Any]) -> Any:
    if type(value) is not kind:
        raise ValueError(f"a stored budget limit has {value!r} where a {kind.__name__} belongs")
    return value


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(_of(value, int))


def _instant(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(_of(value, str))
