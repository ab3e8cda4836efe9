"""Planning: a request's limits turned into the flat storage operations that enforce them.

A budget window becomes a :class:`~spendgate.stores.counters.base.BudgetOp` (its counter
key, the period it counts, its expiry, the bucket a rolling window charges); a rate limit
becomes a :class:`~spendgate.stores.counters.base.RateOp`. The keys and the current period
of each window are cached, so planning a request costs a few dictionary look-ups until the
clock leaves the period. This runs once per request: keep it lean (no per-request objects
beyond the operations themselves).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from spendgate.core.periods import Period
from spendgate.enforcement.limits import BudgetLimit, KeySpace, RateLimit, utc_from_ms
from spendgate.stores.counters.base import RATE_PARALLEL, RATE_TOKENS, RATE_WINDOW, BudgetOp, RateOp

__all__ = [
    "SLACK_MS",
    "BudgetPlan",
    "BudgetPlanner",
    "PeriodWindow",
    "PlannedBudget",
    "bucket_ms_for",
    "new_tuple",
]

new_tuple = tuple.__new__
"""NamedTuple constructors are Python functions; ``tuple.__new__`` builds the same value in
C. Used on the per-request path only, with every field given in order."""

SLACK_MS = 3_600_000
"""Extra life given to counters and slots past the time they are needed (1 h)."""
_BUCKETS_MS = (1_000, 10_000, 60_000, 300_000, 600_000, 3_600_000, 21_600_000, 86_400_000)
_MAX_BUCKETS = 200
_NEVER_MS = 1 << 62
_CACHE_MAX = 100_000


def bucket_ms_for(window_ms: int) -> int:
    """The bucket length of a rolling window: the smallest step giving at most 200 buckets."""
    for step in _BUCKETS_MS:
        if window_ms // step <= _MAX_BUCKETS:
            return step
    return _BUCKETS_MS[-1]


class PeriodWindow:
    """A budget window's keys and current period, cached per (scope, window, timezone, anchor,
    main or not).

    Calendar windows hold the period containing the last request, ``[start_ms, end_ms)``,
    until the clock leaves it (then :meth:`~spendgate.enforcement.limits.BudgetLimit.period_at` runs again,
    so IANA zones and DST stay exact); ``expire_ms`` is the counter's absolute expiry
    (period end + one period length + 1 h; 0: never). Rolling windows hold their bucket
    length and the field of the bucket last charged.
    """

    __slots__ = (
        "bucket",
        "bucket_ms",
        "end_ms",
        "expire_ms",
        "key",
        "lease_key",
        "length_ms",
        "period",
        "start_ms",
        "view_end_ms",
    )

    def __init__(self, key: str, lease_key: str) -> None:
        self.key = key
        self.lease_key = lease_key
        self.start_ms = 0
        self.end_ms = 0  # the cache is valid while start_ms <= now < end_ms
        self.view_end_ms = 0  # period end shown to callers (0: lifetime)
        self.expire_ms = 0
        self.period: Period | None = None
        self.bucket_ms = 0
        self.length_ms = 0
        self.bucket = (-1, "")  # the last bucket charged: (index, field name)


class PlannedBudget(NamedTuple):
    """One budget window of one request: the limit, its storage operation and its window."""

    budget: BudgetLimit
    op: BudgetOp
    window: PeriodWindow
    now_ms: int

    @property
    def start_ms(self) -> int:
        w = self.window
        return self.now_ms - w.length_ms if w.bucket_ms else w.start_ms

    @property
    def end_ms(self) -> int:
        """0 for a lifetime window."""
        return self.now_ms if self.window.bucket_ms else self.window.view_end_ms

    @property
    def period(self) -> Period:
        w = self.window
        if w.period is None:  # rolling: the N seconds up to now
            return Period(utc_from_ms(self.now_ms - w.length_ms), utc_from_ms(self.now_ms), "rolling")
        return w.period


BudgetPlan = tuple[BudgetLimit, BudgetOp, PeriodWindow, int]
"""A :class:`PlannedBudget` as a plain tuple: what admission builds per budget (cheaper)."""


class BudgetPlanner:
    """Plans budget windows and rate limits against one key space; caches windows and keys.

    Args:
        keys: the storage key space.
        lease_ms: how long a parallel slot lives without a release or renew.
        seeded: budget counters must exist (a ledger seed loader is configured), so a
            missing counter is reported as cold rather than read as zero.
    """

    __slots__ = ("_rates", "_windows", "keys", "lease_ms", "seeded")

    def __init__(self, keys: KeySpace, *, lease_ms: int, seeded: bool) -> None:
        self.keys = keys
        self.lease_ms = lease_ms
        self.seeded = seeded
        self._windows: dict[tuple[Any, ...], PeriodWindow] = {}
        self._rates: dict[tuple[Any, ...], tuple[str, int, int, int]] = {}

    def budget(self, b: BudgetLimit, now_ms: int, estimate: int) -> BudgetPlan:
        """The storage operation of one budget window for a request admitted at ``now_ms``."""
        scope, window = b.scope, b.window
        ident = (
            scope.type,
            scope.id,
            window.unit,
            window.count,
            window.fiscal_start_month,
            b.tz,
            b.anchor,
            b.main,
        )
        w = self._windows.get(ident)
        if w is None or not w.start_ms <= now_ms < w.end_ms:
            w = self._refresh(b, ident, w, now_ms)
        limit = b.max_nanos if not b.temp_increase_nanos else b.effective_max_ms(now_ms)
        max_nanos = -1 if limit is None else limit
        step = w.bucket_ms
        if not step:
            ttl = w.expire_ms - now_ms if w.expire_ms else 0
            values = (w.key, w.lease_key, max_nanos, estimate, "s", 0, 0, ttl, self.seeded)
            return b, new_tuple(BudgetOp, values), w, now_ms
        index = now_ms // step
        bucket = w.bucket
        if bucket[0] != index:
            bucket = w.bucket = (index, f"b{index}")  # one store: safe if threads share this
        length = w.length_ms
        values = (
            w.key,
            w.lease_key,
            max_nanos,
            estimate,
            bucket[1],
            step,
            (now_ms - length) // step,
            length + step + SLACK_MS,
            self.seeded,
        )
        return b, new_tuple(BudgetOp, values), w, now_ms

    def _refresh(
        self, b: BudgetLimit, ident: tuple[Any, ...], w: PeriodWindow | None, now_ms: int
    ) -> PeriodWindow:
        """A budget's window moved to the period containing now (first use, or the period ended)."""
        scope, window = b.scope, b.window
        if window.unit == "rolling":
            if w is None:
                w = PeriodWindow(*self.keys.budget(scope, window, "rolling", main=b.main))
                w.length_ms = window.count * 1000
                w.bucket_ms = bucket_ms_for(w.length_ms)
                w.end_ms = _NEVER_MS
        else:
            period = b.period_at(utc_from_ms(now_ms))
            w = PeriodWindow(*self.keys.budget(scope, window, period.key, main=b.main))
            w.period = period
            w.start_ms = int(period.start.timestamp() * 1000)
            if window.unit == "lifetime":
                w.end_ms = _NEVER_MS
            else:
                w.end_ms = w.view_end_ms = int(period.end.timestamp() * 1000)
                w.expire_ms = 2 * w.end_ms - w.start_ms + SLACK_MS
        if len(self._windows) >= _CACHE_MAX:
            self._windows.clear()
        self._windows[ident] = w
        return w

    def rate(self, r: RateLimit, now_ms: int, tokens: int) -> RateOp:
        """The storage operation of one rate limit (``r.limit`` must not be None)."""
        assert r.limit is not None
        ident = (r.scope.type, r.scope.id, r.kind, r.window_seconds)
        cached = self._rates.get(ident)
        if cached is None:
            if len(self._rates) >= _CACHE_MAX:
                self._rates.clear()
            if r.kind == "parallel":
                cached = (self.keys.rate(r), RATE_PARALLEL, 0, self.lease_ms + SLACK_MS)
            else:
                w = r.window_ms
                cached = (
                    self.keys.rate(r),
                    RATE_TOKENS if r.kind == "tokens" else RATE_WINDOW,
                    w,
                    2 * w + 1000,
                )
            self._rates[ident] = cached
        key, kind, w, ttl = cached
        if kind == RATE_PARALLEL:
            return new_tuple(RateOp, (key, kind, r.limit, 1, 0, 0, ttl))
        return new_tuple(
            RateOp, (key, kind, r.limit, tokens if kind == RATE_TOKENS else 1, w, now_ms // w, ttl)
        )
