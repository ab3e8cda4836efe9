"""What goes into an admission and what comes out of it.

* :class:`EnforcementRequest`: the limits that apply to a request and its worst case;
* :class:`Reservation`: an admitted request (its reservation and rate-limit units), to be
  settled or released; it shows each budget window (:class:`BudgetView`) and rate limit
  (:class:`RateView`) as they stand after the admission, and the soft budgets the request
  reached (:class:`SoftBudgetCrossing`).

The views are computed only when read (most requests never read them), from the numbers
the admission kept.

A reservation that must outlive the process (a batch's, settled hours later, possibly by
another instance or after a restart) is stored as :meth:`Reservation.to_json` and rebuilt
with :meth:`Reservation.from_json`: any :class:`~spendgate.enforcement.enforcer.Enforcer` on
the same storage (same Redis and key prefix; in-process, the same storage object) can then
settle, release or renew it. It keeps the budget limits its operations were planned from
(:func:`_limit_json`: the scope, the window and its calendar, the soft limit, the alert
thresholds), so its settle is checked for budget crossings
(:mod:`spendgate.enforcement.crossings`) as a request's is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, TypeVar

from spendgate.core.periods import Window
from spendgate.core.scopes import Scope
from spendgate.enforcement.limits import BudgetLimit, RateLimit, utc_from_ms
from spendgate.enforcement.planning import BudgetPlan, new_tuple
from spendgate.stores.counters.base import RATE_PARALLEL, TICKS, BudgetOp, BudgetState, RateOp, RateState

__all__ = [
    "BudgetView",
    "EnforcementRequest",
    "RateView",
    "Reservation",
    "SoftBudgetCrossing",
]

_JSON_VERSION = 1
_T = TypeVar("_T")


@dataclass(slots=True)
class EnforcementRequest:
    """What a request asks of the limits: its worst-case cost and tokens, and which limits apply.

    ``estimate_nanos``: the worst-case cost (prompt estimate × input rate + max output ×
    output rate), see :mod:`spendgate.enforcement.estimate`. ``estimate_tokens``: the prompt
    estimate plus the largest declared output cap.
    """

    request_id: str
    budgets: Sequence[BudgetLimit] = ()
    rate_limits: Sequence[RateLimit] = ()
    estimate_nanos: int = 0
    estimate_tokens: int = 0


@dataclass(frozen=True, slots=True)
class SoftBudgetCrossing:
    """A soft budget at or past its threshold with this request; ``first``: this request crossed it."""

    budget: BudgetLimit
    spend_nanos: int
    soft_nanos: int
    first: bool


class BudgetView(NamedTuple):
    """A budget window after admission: ``reserved_nanos`` includes this request."""

    budget: BudgetLimit
    limit_nanos: int | None
    spend_nanos: int
    reserved_nanos: int
    start_ms: int
    end_ms: int
    """0 for a lifetime window."""

    @property
    def period_start(self) -> datetime:
        return utc_from_ms(self.start_ms)

    @property
    def period_end(self) -> datetime | None:
        return utc_from_ms(self.end_ms) if self.end_ms else None

    @property
    def remaining_nanos(self) -> int | None:
        if self.limit_nanos is None:
            return None
        return self.limit_nanos - self.spend_nanos - self.reserved_nanos


class RateView(NamedTuple):
    """A rate limit after admission: ``used`` units (weighted), ``reset_ms`` until the window rolls."""

    limit: RateLimit
    used: int
    reset_ms: int

    @property
    def remaining(self) -> int:
        return max(0, (self.limit.limit or 0) - self.used)


@dataclass(slots=True)
class Reservation:
    """An admitted request: pass it to :meth:`~spendgate.enforcement.enforcer.Enforcer.settle`
    or :meth:`~spendgate.enforcement.enforcer.Enforcer.release`.

    ``enforced`` is False when the request was let through by a fail-open policy (storage
    unreachable); settling it then does nothing. ``budgets`` and ``rates`` (the state after
    admission, for headers) are computed when first read. ``lease_ms``: the reservation's
    own lease (``Enforcer.admit(..., lease_seconds=...)``); 0: the enforcer's.
    """

    request_id: str
    admitted_at_ms: int
    reserved_nanos: int
    estimate_tokens: int
    budget_ops: tuple[BudgetOp, ...] = ()
    rate_ops: tuple[RateOp, ...] = ()
    soft_crossed: tuple[SoftBudgetCrossing, ...] = ()
    enforced: bool = True
    _source: tuple[Any, ...] | None = None
    _views: tuple[tuple[BudgetView, ...], tuple[RateView, ...]] | None = None
    lease_ms: int = 0
    stored_limits: tuple[BudgetLimit, ...] = ()
    """A rebuilt reservation's budget limits, one per budget operation (empty: not kept,
    as in a reservation stored before they were)."""

    @property
    def budget_limits(self) -> tuple[BudgetLimit, ...]:
        """The limit of each budget operation, in their order (empty when not known)."""
        if self._source is not None:
            return tuple(plan[0] for plan in self._source[1])
        return self.stored_limits

    @property
    def budgets(self) -> tuple[BudgetView, ...]:
        """Each budget window after admission (``reserved_nanos`` includes this request)."""
        return self._build()[0]

    @property
    def rates(self) -> tuple[RateView, ...]:
        """Each rate limit after admission."""
        return self._build()[1]

    def to_json(self) -> dict[str, Any]:
        """What settling, releasing or renewing needs, as JSON-safe values.

        The storage operations are kept as they were planned at admission (keys, the period
        or bucket charged, expiries), so a settle charges the window the reservation was
        taken in, whenever and wherever it runs, and so are the limits they were planned
        from (``limits``: crossings are checked against them). Not kept: the views
        (``budgets``, ``rates``) and ``soft_crossed``, which describe the admission itself
        (a rebuilt reservation has none).
        """
        return {
            "v": _JSON_VERSION,
            "request_id": self.request_id,
            "admitted_at_ms": self.admitted_at_ms,
            "reserved_nanos": self.reserved_nanos,
            "estimate_tokens": self.estimate_tokens,
            "lease_ms": self.lease_ms,
            "enforced": 1 if self.enforced else 0,
            "budgets": [[*b[:8], 1 if b.require_seed else 0] for b in self.budget_ops],
            "rates": [list(r) for r in self.rate_ops],
            "limits": [_limit_json(limit) for limit in self.budget_limits],
        }

    @classmethod
    def from_json(cls, data: Any) -> Reservation:
        """The reservation :meth:`to_json` described (after a JSON round trip too).

        Raises:
            ValueError: ``data`` is not what :meth:`to_json` returns.
        """
        if not isinstance(data, dict):
            raise ValueError("a stored reservation must be a JSON object")
        if data.get("v") != _JSON_VERSION:
            raise ValueError(f"unknown stored reservation version {data.get('v')!r}")
        try:
            budgets = tuple(
                BudgetOp(
                    _typed(b[0], str),
                    _typed(b[1], str),
                    _typed(b[2], int),
                    _typed(b[3], int),
                    _typed(b[4], str),
                    _typed(b[5], int),
                    _typed(b[6], int),
                    _typed(b[7], int),
                    bool(_typed(b[8], int)),
                )
                for b in _rows(data["budgets"], 9)
            )
            rates = tuple(
                RateOp(_typed(r[0], str), *(_typed(x, int) for x in r[1:])) for r in _rows(data["rates"], 7)
            )
            return cls(
                _typed(data["request_id"], str),
                _typed(data["admitted_at_ms"], int),
                _typed(data["reserved_nanos"], int),
                _typed(data["estimate_tokens"], int),
                budgets,
                rates,
                enforced=bool(_typed(data["enforced"], int)),
                lease_ms=_typed(data["lease_ms"], int),
                stored_limits=_limits(data.get("limits"), len(budgets)),
            )
        except KeyError as exc:
            raise ValueError(f"a stored reservation lacks {exc.args[0]!r}") from None

    def _build(self) -> tuple[tuple[BudgetView, ...], tuple[RateView, ...]]:
        if self._views is None:
            if self._source is None:
                self._views = ((), ())
            else:
                self._views = _views(*self._source)
        return self._views


def _typed(value: Any, kind: type[_T]) -> _T:
    """``value`` if it is exactly of ``kind`` (a bool is not an int here)."""
    if type(value) is not kind:
        raise ValueError(f"a stored reservation has {value!r} where a {kind.__name__} belongs")
    return value


def _limit_json(limit: BudgetLimit) -> dict[str, Any]:
    """A budget limit as JSON-safe values (amounts as integers, instants and thresholds as text)."""
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


def _limits(value: Any, count: int) -> tuple[BudgetLimit, ...]:
    """The stored limits (:func:`_limit_json`), one per budget operation; none when they
    were not stored (a reservation from before they were), do not match the operations or
    cannot be read (the reservation is still settled: only its crossings go unchecked)."""
    if not isinstance(value, list) or len(value) != count:
        return ()
    try:
        return tuple(_limit_of(item) for item in value)
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return ()


def _limit_of(data: Any) -> BudgetLimit:
    """The limit :func:`_limit_json` described (raises on anything else)."""
    scope_type, scope_id = data["scope"]
    unit, count, fiscal = data["window"]
    return BudgetLimit(
        Scope(_typed(scope_type, str), _typed(scope_id, str)),
        Window(_typed(unit, str), _typed(count, int), _typed(fiscal, int)),
        None if data["max"] is None else _typed(data["max"], int),
        None if data["soft"] is None else _typed(data["soft"], int),
        None if data["tz"] is None else _typed(data["tz"], str),
        _typed(data["temp"], int),
        _instant(data["temp_expiry"]),
        tuple(Decimal(_typed(t, str)) for t in data["thresholds"]),
        _instant(data["anchor"]),
        _typed(data["main"], bool),
    )


def _instant(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(_typed(value, str))


def _rows(value: Any, width: int) -> list[list[Any]]:
    """A list of lists of ``width`` items each."""
    if not isinstance(value, list) or not all(isinstance(v, list) and len(v) == width for v in value):
        raise ValueError(f"a stored reservation's operations must be lists of {width} values")
    return value


def _views(
    own: int,
    plan: list[BudgetPlan],
    states: tuple[BudgetState, ...],
    limits: list[RateLimit],
    ops: list[RateOp],
    rstates: tuple[RateState, ...],
) -> tuple[tuple[BudgetView, ...], tuple[RateView, ...]]:
    views = []
    for (budget, bop, w, now_ms), s in zip(plan, states, strict=True):
        if w.bucket_ms:  # rolling: the window up to now
            start_ms, end_ms = now_ms - w.length_ms, now_ms
        else:
            start_ms, end_ms = w.start_ms, w.view_end_ms
        limit = None if bop.max_nanos < 0 else bop.max_nanos
        views.append(new_tuple(BudgetView, (budget, limit, s.spend, s.reserved + own, start_ms, end_ms)))
    rviews = []
    for r, op, rs in zip(limits, ops, rstates, strict=True):
        if op.kind == RATE_PARALLEL:
            rviews.append(new_tuple(RateView, (r, rs.current + 1, 0)))
            continue
        ticks = rs.elapsed_ms * TICKS // op.window_ms
        used = -(-(rs.previous * (TICKS - ticks) + (rs.current + op.amount) * TICKS) // TICKS)
        rviews.append(new_tuple(RateView, (r, used, op.window_ms - rs.elapsed_ms)))
    return tuple(views), tuple(rviews)
