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

from spendgate.alerts.budget import LIMITS_WINDOW, budget_message, scope_labels
from spendgate.alerts.model import Alert, AlertKind
from spendgate.core.periods import Period
from spendgate.enforcement.limits import BudgetLimit, utc_from_ms
from spendgate.enforcement.planning import PeriodWindow
from spendgate.enforcement.reservation import Reservation
from spendgate.stores.counters.base import BudgetOp

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


Ratio = tuple[Decimal, int, int, str]
"""A threshold: the percent, its exact integer ratio (``spend * 100 * d >= max * n``) and
its report name."""


def _ratios(thresholds: Iterable[Decimal]) -> tuple[Ratio, ...]:
    """Each percent with its exact integer ratio and name, ascending."""
    out = []
    for t in sorted(set(thresholds)):
        if not t.is_finite() or t <= 0:
            raise ValueError(f"an alert threshold must be a positive percent, got {t}")
        n, d = t.as_integer_ratio()
        out.append((t, n, d, f"t{t}"))
    return tuple(out)


_NEVER = 1 << 62


class _Seen:
    """What this instance reported about one counter in one period (report name → the
    limit it was made at), and when the next report could be due: while the limit is
    ``limit``, the spend below ``next_at``, the time before ``stop_ms`` and no forecast
    possible (before ``forecast_from_ms``, or the pace below the limit), a settle of this
    counter has nothing to report and costs three comparisons."""

    __slots__ = ("end_ms", "forecast_from_ms", "limit", "next_at", "reported", "start_ms", "stop_ms")

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.stop_ms = end_ms or _NEVER
        self.reported: dict[str, int] = {}
        self.limit = 0
        self.next_at = 0  # checked in full on the first settle
        self.forecast_from_ms = _NEVER


class CrossingWatch:
    """Turns each settle's spends into :class:`Crossing` values for ``sink``.

    Args:
        sink: takes the crossings of one settle; must not block or raise (it runs on the
            request path). A sink that cannot keep a crossing calls :meth:`forget`.
        thresholds: percents of ``max_budget`` (default 50, 80, 100); a budget's own
            ``alert_thresholds`` are added to them.
        forecast_after: the fraction of a period that must have passed before a forecast
            is made (default 0.1).
        memo_max: counters remembered (the least recently settled forgotten first).
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
        lowest = min((t / 100 for t, _, _, _ in self._default), default=forecast_after)
        self._floor = min(lowest, forecast_after).as_integer_ratio()
        self._memo: OrderedDict[str, _Seen] = OrderedDict()  # counter key → its reports
        self._memo_max = memo_max

    def __call__(self, reservation: Reservation, spends: Sequence[int], now_ms: int) -> None:
        """Look at one settle (the enforcer calls this with the storage's answer)."""
        source = reservation._source
        live = source is not None
        if source is not None:
            planned: Sequence[tuple[BudgetLimit, BudgetOp, PeriodWindow | None, int]] = source[1]
        elif reservation.stored_limits:  # rebuilt from JSON (a batch's), with its limits
            stored = zip(reservation.stored_limits, reservation.budget_ops, strict=True)
            planned = [(budget, op, None, 0) for budget, op in stored]
        else:  # rebuilt from JSON stored without them: nothing to compare with
            return
        fn, fd = self._floor
        memo = self._memo
        found: list[Crossing] = []
        for (budget, op, window, _), after in zip(planned, spends, strict=False):
            if after < 0 or (not live and budget.window.unit == "rolling"):
                # (A rebuilt reservation's rolling window: the storage sums its buckets from
                # the oldest at admission, hours before, so the spend is not the window's.)
                continue
            # A rebuilt reservation's limit is read now: an increase may have expired since.
            limit = op.max_nanos if live else _limit_now(budget, now_ms)
            soft = budget.soft_nanos
            seen = memo.get(op.key)
            if seen is None:
                if (
                    (limit <= 0 or after * fd < limit * fn)
                    and (soft is None or after < soft)
                    and not budget.alert_thresholds
                ):
                    continue  # below every level, nothing reported for this counter: most settles
            elif (
                seen.limit == limit
                and after < seen.next_at
                and now_ms < seen.stop_ms
                and (
                    now_ms < seen.forecast_from_ms
                    or after * (seen.end_ms - seen.start_ms) < limit * (now_ms - seen.start_ms)
                )
            ):
                continue  # past some level already reported, short of the next one
            self._check(found, seen, budget, op.key, limit, window, reservation, after, now_ms, live=live)
        if found:
            self.sink(found)

    def _check(
        self,
        out: list[Crossing],
        seen: _Seen | None,
        budget: BudgetLimit,
        key: str,
        limit: int,
        window: PeriodWindow | None,
        reservation: Reservation,
        after: int,
        now_ms: int,
        *,
        live: bool = True,
    ) -> None:
        rolling = budget.window.unit == "rolling"
        if seen is None or (rolling and not seen.start_ms <= now_ms < seen.end_ms):
            seen = _Seen(*self._period(budget, window, reservation, now_ms))
            self._remember(key, seen)
        else:
            self._memo.move_to_end(key)
        start_ms, end_ms = seen.start_ms, seen.end_ms
        if end_ms and end_ms <= now_ms:
            return  # a past period: never alerted
        reported = seen.reported
        shown = None if limit < 0 else limit
        memo = f"{key}\x00"

        def report(kind: CrossingKind, name: str, **values: Any) -> None:
            reported[name] = limit
            out.append(Crossing(kind, budget, after, shown, start_ms, end_ms, now_ms, memo + name, **values))

        ratios = self._default
        if budget.alert_thresholds:
            ratios = _ratios((*(r[0] for r in ratios), *budget.alert_thresholds))
        if limit > 0:
            cleared: Decimal | None = None
            for t, n, d, name in ratios:
                at = reported.get(name)
                if after * 100 * d >= limit * n:
                    if at is None:
                        report("threshold", name, threshold=t)
                # Reported at a lower limit, below it at this one: the limit was raised.
                # (Not merely a lower spend: concurrent settles' answers arrive in any order.)
                # Never from a stored reservation: its limit may be hours old.
                elif at is not None and at < limit and not rolling and live:
                    del reported[name]
                    cleared = t
            if cleared is not None:
                out.append(
                    Crossing(
                        "cleared",
                        budget,
                        after,
                        limit,
                        start_ms,
                        end_ms,
                        now_ms,
                        f"{memo}x{cleared}",
                        cleared,
                    )
                )
            if end_ms and after < limit and "p" not in reported:
                self._forecast_check(report, after, limit, start_ms, end_ms, now_ms)
        soft = budget.soft_nanos
        if soft is not None and after >= soft and "s" not in reported:
            report("soft", "s")
        self._next(seen, ratios if limit > 0 else (), limit, soft)

    def _next(self, seen: _Seen, ratios: Sequence[Ratio], limit: int, soft: int | None) -> None:
        """When this counter could next have something to report (see :class:`_Seen`)."""
        reported = seen.reported
        nexts = [-(-limit * n // (100 * d)) for _, n, d, name in ratios if name not in reported]
        if soft is not None and "s" not in reported:
            nexts.append(soft)
        seen.limit = limit
        seen.next_at = min(nexts, default=_NEVER)
        n, d = self._forecast
        length = seen.end_ms - seen.start_ms
        forecast = limit > 0 and seen.end_ms > 0 and "p" not in reported and length > 0
        seen.forecast_from_ms = seen.start_ms + -(-length * n // d) if forecast else _NEVER

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
        budget: BudgetLimit, window: PeriodWindow | None, reservation: Reservation, now_ms: int
    ) -> tuple[int, int]:
        """The reported period: (start ms, end ms). A calendar window's is the one its
        reservation charged (its counter key names it); a rolling window's, the block of its
        own length holding now (so it alerts at most once per level per that length);
        lifetime: (0, 0)."""
        unit = budget.window.unit
        if unit == "lifetime":
            return 0, 0
        if unit == "rolling":
            length = budget.window.count * 1000
            start = now_ms - now_ms % length
            return start, start + length
        period: Period | None = None if window is None else window.period
        if period is None:
            period = budget.period_at(utc_from_ms(reservation.admitted_at_ms))
        return int(period.start.timestamp() * 1000), int(period.end.timestamp() * 1000)

    def _remember(self, key: str, seen: _Seen) -> None:  # newest last
        memo = self._memo
        memo[key] = seen
        if len(memo) > self._memo_max:
            memo.popitem(last=False)

    def forget(self, memo: str) -> None:
        """Report ``memo``'s crossing again next time (it could not be kept)."""
        key, _, name = memo.partition("\x00")
        seen = self._memo.get(key)
        if seen is not None:
            seen.reported.pop(name, None)
            seen.next_at = seen.limit = 0  # checked in full on the next settle


def _alert_window(budget: BudgetLimit) -> str | None:
    """The alert's ``window``: a key's windows other than its main one are named apart
    (``limits:1mo``), as their counters are, so a main window and a ``budget_limits`` window
    of the same duration never share an alert's identity (one would be dropped as decided)."""
    if budget.window.unit == "lifetime":
        return None
    name = budget.window.name
    return name if budget.main or budget.scope.type != "key" else f"{LIMITS_WINDOW}{name}"


def _limit_now(budget: BudgetLimit, now_ms: int) -> int:
    """The budget's limit at ``now_ms`` as a counter operation carries it (``-1``: unlimited)."""
    limit = budget.effective_max_ms(now_ms)
    return -1 if limit is None else limit


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
        window=_alert_window(budget),
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
