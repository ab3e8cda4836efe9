"""Budget crossings, detected where spend changes (DESIGN §5.13).

A settle already returns each budget window's spend right after it (one atomic step per
request, :meth:`~spendgate.stores.counters.base.Storage.settle`), so deciding whether a
threshold was reached costs a few integer comparisons and no storage call.
:class:`CrossingWatch` is handed those numbers by the enforcer and reports, to a sink that
must not block (the alerts' recorder queues them and writes off the request path):

* ``threshold``: the spend reached a percent of the limit (default 50, 80, 100; a budget may
  add its own, e.g. LiteLLM's ``max_budget_alert_emails`` keys);
* ``soft``: the spend reached the soft budget;
* ``projected``: a linear forecast over the period so far reaches the limit before the
  period ends (once a tenth of the period has passed, so one early call is no forecast);
* ``cleared``: a threshold this watch reported is no longer reached in the same period (a
  temporary increase raised the limit).

The rule is *at or past the level and not yet reported here*, not *this settle crossed it*:
a crossing that was reported but never written (a crash, a full queue: the sink calls
:meth:`CrossingWatch.forget`) is reported again by the next settle of that window, on any
instance. Exactly-once is the decision row's job (a unique key in the database), not this
memo's; the memo only keeps one instance from reporting the same level on every request.
Never reported: a period that has already ended when its settle arrives (a long stream
admitted yesterday).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from spendgate.alerts.budget import budget_message, scope_labels
from spendgate.alerts.model import Alert, AlertKind
from spendgate.core.periods import Period, period_for
from spendgate.enforcement.limits import BudgetLimit, utc_from_ms
from spendgate.enforcement.planning import PeriodWindow
from spendgate.enforcement.reservation import Reservation

__all__ = ["DEFAULT_THRESHOLDS", "Crossing", "CrossingKind", "CrossingWatch", "alert_of"]

CrossingKind = Literal["threshold", "soft", "projected", "cleared"]
DEFAULT_THRESHOLDS: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
_MEMO_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Crossing:
    """One level reached (or, ``cleared``, left) by a budget window in one period.

    Money is integer nano-USD, times ms since the epoch. ``start_ms`` / ``end_ms`` are the
    period's (0 and 0 for a lifetime window). ``threshold`` is the percent (``threshold``,
    ``cleared``: the highest one cleared). ``memo`` names this report to
    :meth:`CrossingWatch.forget`.
    """

    kind: CrossingKind
    budget: BudgetLimit
    spend_nanos: int
    limit_nanos: int | None
    start_ms: int
    end_ms: int
    at_ms: int
    memo: str
    threshold: Decimal | None = None
    projected_nanos: int | None = None
    projected_at_ms: int | None = None


def _ratios(thresholds: Iterable[Decimal]) -> tuple[tuple[Decimal, int, int], ...]:
    """Each percent with its exact integer ratio, ascending: ``spend * 100 * d >= max * n``."""
    out = []
    for t in sorted(set(thresholds)):
        if not t.is_finite() or t <= 0:
            raise ValueError(f"an alert threshold must be a positive percent, got {t}")
        n, d = t.as_integer_ratio()
        out.append((t, n, d))
    return tuple(out)


class CrossingWatch:
    """Turns each settle's spends into :class:`Crossing` values for ``sink``.

    Args:
        sink: takes the crossings of one settle; must not block or raise (it runs on the
            request path). A sink that cannot keep a crossing calls :meth:`forget`.
        thresholds: percents of ``max_budget`` (default 50, 80, 100); a budget's own
            ``alert_thresholds`` are added to them.
        forecast_after: the fraction of a period that must have passed before a forecast
            is made (default 0.1).
        memo_max: reports remembered (oldest forgotten first).
    """

    __slots__ = ("_default", "_floor", "_forecast", "_memo", "_memo_max", "sink")

    def __init__(
        self,
        sink: Callable[[list[Crossing]], None],
        *,
        thresholds: Sequence[Decimal] = DEFAULT_THRESHOLDS,
        forecast_after: Decimal = Decimal("0.1"),
        memo_max: int = _MEMO_MAX,
    ) -> None:
        if not 0 < forecast_after <= 1:
            raise ValueError(f"forecast_after must be a fraction of the period, got {forecast_after}")
        self.sink = sink
        self._default = _ratios(thresholds)
        self._forecast = forecast_after.as_integer_ratio()
        # Below this fraction of its limit a window can reach no threshold and no forecast:
        # the one comparison most settles make.
        lowest = min((t / 100 for t, _, _ in self._default), default=forecast_after)
        self._floor = min(lowest, forecast_after).as_integer_ratio()
        self._memo: OrderedDict[str, int] = OrderedDict()  # report → the limit it was made at
        self._memo_max = memo_max

    def __call__(self, reservation: Reservation, spends: Sequence[int], now_ms: int) -> None:
        """Look at one settle (the enforcer calls this with the storage's answer)."""
        source = reservation._source
        if source is None:  # rebuilt from JSON (a batch's): no limits to compare with
            return
        fn, fd = self._floor
        memo = self._memo
        found: list[Crossing] = []
        for (budget, op, window, _), after in zip(source[1], spends, strict=False):
            if after < 0:
                continue
            limit = op.max_nanos
            soft = budget.soft_nanos
            if (
                (limit <= 0 or after * fd < limit * fn)
                and (soft is None or after < soft)
                and not budget.alert_thresholds
                and op.key + "|c" not in memo
            ):
                continue  # below every level, nothing reported for this counter: most settles
            self._check(found, budget, op.key, limit, window, reservation, after, now_ms)
        if found:
            self.sink(found)

    def _check(
        self,
        out: list[Crossing],
        budget: BudgetLimit,
        key: str,
        limit: int,
        window: PeriodWindow,
        reservation: Reservation,
        after: int,
        now_ms: int,
    ) -> None:
        start_ms, end_ms, tag = self._period(budget, window, reservation, now_ms)
        unit = budget.window.unit
        if end_ms and end_ms <= now_ms:
            return  # a past period: never alerted
        base = f"{key}|{tag}|"
        memo = self._memo
        shown = None if limit < 0 else limit

        def report(kind: CrossingKind, name: str, **values: Any) -> None:
            if base + name in memo:
                return
            self._remember(base + name, limit)
            self._remember(key + "|c", 0)
            out.append(Crossing(kind, budget, after, shown, start_ms, end_ms, now_ms, base + name, **values))

        if limit > 0:
            ratios = self._default
            if budget.alert_thresholds:
                ratios = _ratios((*(t for t, _, _ in ratios), *budget.alert_thresholds))
            cleared: Decimal | None = None
            for t, n, d in ratios:
                if after * 100 * d >= limit * n:
                    report("threshold", f"t{t}", threshold=t)
                    continue
                # Reported here at a lower limit, below it at this one: the limit was raised.
                # (Not merely a lower spend: concurrent settles' answers arrive in any order.)
                reported_at = memo.get(f"{base}t{t}")
                if reported_at is not None and reported_at < limit and unit != "rolling":
                    del memo[f"{base}t{t}"]
                    cleared = t
            if cleared is not None:
                name = f"{base}x{cleared}"
                out.append(Crossing("cleared", budget, after, limit, start_ms, end_ms, now_ms, name, cleared))
            if end_ms and after < limit:
                self._forecast_check(report, after, limit, start_ms, end_ms, now_ms)
        soft = budget.soft_nanos
        if soft is not None and after >= soft:
            report("soft", "s")

    def _forecast_check(
        self,
        report: Callable[..., None],
        after: int,
        limit: int,
        start_ms: int,
        end_ms: int,
        now_ms: int,
    ) -> None:
        """``projected``: at this pace the period ends at or past the limit."""
        elapsed, length = now_ms - start_ms, end_ms - start_ms
        n, d = self._forecast
        if elapsed <= 0 or elapsed * d < length * n or after * length < limit * elapsed:
            return
        report(
            "projected",
            "p",
            projected_nanos=after * length // elapsed,
            projected_at_ms=start_ms + limit * elapsed // after,
        )

    @staticmethod
    def _period(
        budget: BudgetLimit, window: PeriodWindow, reservation: Reservation, now_ms: int
    ) -> tuple[int, int, str]:
        """The reported period: (start ms, end ms, memo tag). A calendar window's is the one
        its reservation charged; a rolling window's, the block of its own length holding
        now (so it alerts at most once per level per that length); lifetime: (0, 0)."""
        unit = budget.window.unit
        if unit == "lifetime":
            return 0, 0, "life"
        if unit == "rolling":
            length = budget.window.count * 1000
            start = now_ms - now_ms % length
            return start, start + length, str(start)
        period: Period | None = window.period
        if period is None:
            period = period_for(budget.window, utc_from_ms(reservation.admitted_at_ms), budget.tz)
        return int(period.start.timestamp() * 1000), int(period.end.timestamp() * 1000), period.key

    def _remember(self, name: str, limit: int) -> None:
        memo = self._memo
        memo[name] = limit
        memo.move_to_end(name)
        if len(memo) > self._memo_max:
            memo.popitem(last=False)

    def forget(self, memo: str) -> None:
        """Report ``memo``'s crossing again next time (it could not be kept)."""
        self._memo.pop(memo, None)


def alert_of(crossing: Crossing) -> Alert:
    """The alert a crossing decides (named and worded later, off the request path:
    :func:`spendgate.alerts.budget.describe`)."""
    budget = crossing.budget
    scope = budget.scope
    lifetime = budget.window.unit == "lifetime"
    start = None if lifetime else utc_from_ms(crossing.start_ms)
    end = None if lifetime else utc_from_ms(crossing.end_ms)
    kind: AlertKind = _KINDS[crossing.kind]
    extra: dict[str, Any] = {"reason": "limit_raised"} if crossing.kind == "cleared" else {}
    alert = Alert(
        kind=kind,
        scope_type=scope.type,
        scope_id=scope.id,
        message="",
        window=None if lifetime else budget.window.name,
        period_start=start,
        period_end=end,
        threshold=crossing.threshold,
        spend_nanos=crossing.spend_nanos,
        limit_nanos=crossing.limit_nanos,
        soft_limit_nanos=budget.soft_nanos,
        reset_at=end,
        projected_spend_nanos=crossing.projected_nanos,
        projected_exceeded_at=None
        if crossing.projected_at_ms is None
        else utc_from_ms(crossing.projected_at_ms),
        labels=scope_labels(scope.type, scope.id),
        extra=extra,
    )
    return replace(alert, message=budget_message(alert))


_KINDS: dict[str, AlertKind] = {
    "threshold": "budget_crossed",
    "soft": "soft_budget_crossed",
    "projected": "projected_exceed",
    "cleared": "budget_resolved",
}
