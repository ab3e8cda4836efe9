"""How limits are enforced: reserve at admission, settle or release afterwards.

::

    admission = Admission(storage_from_url("redis://127.0.0.1:6379/0"))
    ticket = await admission.admit(EnforcementRequest(request_id, budgets, rate_limits,
                                                      estimate_nanos, estimate_tokens))
    ...                                   # forward the call, meter and price it
    await admission.settle(ticket, real_cost_nanos, real_tokens)
    # or, when nothing was billed:
    await admission.release(ticket)

``admit`` is one storage call (one Redis round trip): every budget window of every scope
and every rate limit of the request are checked and taken together, all or nothing. It
raises :class:`~spendgate.errors.BudgetExceeded` or :class:`~spendgate.errors.RateLimited`
(a budget failure wins when both fail: retrying cannot help it). ``settle`` and ``release``
are one call each and idempotent by request id. See ``docs/enforcement.md``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from spendgate.core.periods import Period, period_for
from spendgate.enforcement.limits import BudgetLimit, KeySpace, RateLimit, utc_from_ms
from spendgate.errors import BudgetExceeded, ConfigurationError, RateLimited, StorageError
from spendgate.stores.counters.base import (
    RATE_PARALLEL,
    RATE_TOKENS,
    RATE_WINDOW,
    TICKS,
    AdmitOp,
    AdmitResult,
    BudgetOp,
    BudgetState,
    RateOp,
    RateState,
    SettleOp,
    Storage,
)

__all__ = [
    "Admission",
    "BudgetView",
    "EnforcementRequest",
    "Mode",
    "RateView",
    "SeedLoader",
    "SoftBudgetCrossing",
    "Ticket",
    "bucket_ms_for",
    "rate_retry_ms",
]

log = logging.getLogger("spendgate.enforcement")

Mode = Literal["strict", "check_only"]
SeedLoader = Callable[[BudgetLimit, Period], Awaitable[int]]
"""Returns a cold counter's spend for a period, from the ledger (nano-USD)."""

_SLACK_MS = 3_600_000
# NamedTuple constructors are Python functions; tuple.__new__ builds the same value in C.
# Used on the per-request path only, with every field given in order.
_new = tuple.__new__
_BUCKETS_MS = (1_000, 10_000, 60_000, 300_000, 600_000, 3_600_000, 21_600_000, 86_400_000)
_MAX_BUCKETS = 200


def bucket_ms_for(window_ms: int) -> int:
    """The bucket length of a rolling window: the smallest step giving at most 200 buckets."""
    for step in _BUCKETS_MS:
        if window_ms // step <= _MAX_BUCKETS:
            return step
    return _BUCKETS_MS[-1]


def rate_retry_ms(state: RateState, limit: int, amount: int, window_ms: int) -> int | None:
    """Milliseconds until a sliding window has room for ``amount`` (None: never)."""
    if amount > limit:
        return None
    previous, current, elapsed = state.previous, state.current, state.elapsed_ms
    room = limit - current - amount
    if room >= 0:
        if previous == 0:
            return 0
        ticks = max(0, math.ceil(TICKS - room * TICKS / previous))
        return max(1, math.ceil(ticks * window_ms / TICKS) - elapsed)
    # Wait for the next window, where this window's count becomes the previous one.
    ticks = max(0, math.ceil(TICKS - (limit - amount) * TICKS / current)) if current else 0
    return window_ms - elapsed + math.ceil(ticks * window_ms / TICKS)


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
class Ticket:
    """An admitted request: pass it to :meth:`Admission.settle` or :meth:`Admission.release`.

    ``enforced`` is False when the request was let through by a fail-open policy (storage
    unreachable); settling it then does nothing. ``budgets`` and ``rates`` (the state after
    admission, for headers) are computed when first read.
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

    @property
    def budgets(self) -> tuple[BudgetView, ...]:
        """Each budget window after admission (``reserved_nanos`` includes this request)."""
        return self._build()[0]

    @property
    def rates(self) -> tuple[RateView, ...]:
        """Each rate limit after admission."""
        return self._build()[1]

    def _build(self) -> tuple[tuple[BudgetView, ...], tuple[RateView, ...]]:
        if self._views is None:
            if self._source is None:
                self._views = ((), ())
            else:
                self._views = _views(*self._source)
        return self._views


def _views(
    own: int,
    plan: list[_Plan],
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
        views.append(_new(BudgetView, (budget, limit, s.spend, s.reserved + own, start_ms, end_ms)))
    rviews = []
    for r, op, rs in zip(limits, ops, rstates, strict=True):
        if op.kind == RATE_PARALLEL:
            rviews.append(_new(RateView, (r, rs.current + 1, 0)))
            continue
        ticks = rs.elapsed_ms * TICKS // op.window_ms
        used = -(-(rs.previous * (TICKS - ticks) + (rs.current + op.amount) * TICKS) // TICKS)
        rviews.append(_new(RateView, (r, used, op.window_ms - rs.elapsed_ms)))
    return tuple(views), tuple(rviews)


class _Window:
    """A budget window's keys and current period, cached per (scope, window, timezone).

    Calendar windows hold the period containing the last request, ``[start_ms, end_ms)``,
    until the clock leaves it (then :func:`~spendgate.core.periods.period_for` runs again,
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


class _Planned(NamedTuple):
    """One budget window of one request: the limit, its storage operation and its window."""

    budget: BudgetLimit
    op: BudgetOp
    window: _Window
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


_Plan = tuple[BudgetLimit, BudgetOp, _Window, int]
"""A :class:`_Planned` as a plain tuple: what the admission builds per budget (cheaper)."""

_NEVER_MS = 1 << 62
_CACHE_MAX = 100_000


class Admission:
    """Admits, settles and releases requests against one storage.

    Args:
        storage: where counters live (:func:`~spendgate.stores.counters_from_url`).
        mode: ``strict`` reserves the worst case (default); ``check_only`` compares the
            current spend only, like LiteLLM, and can be raced past by concurrent requests.
        lease_seconds: how long a reservation or parallel slot lives without a settle,
            release or renew; a crashed instance's reservations expire after it.
        clock: seconds since the epoch (injected in tests).
        loader: seeds a cold budget counter from the ledger; when given, a counter that does
            not exist is never assumed to be zero. A loader failure is a storage failure
            (the fail-open / fail-closed policy applies).
        fail_open_budgets: admit unchecked when the storage fails and the request has
            budgets (default: refuse, raising :class:`StorageError`).
        fail_open_rate_limits: admit unchecked when the storage fails and the request has
            only rate limits (default: admit).
        idempotency_seconds: how long a settled or released request id is remembered.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        mode: Mode = "strict",
        lease_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
        loader: SeedLoader | None = None,
        fail_open_budgets: bool = False,
        fail_open_rate_limits: bool = True,
        idempotency_seconds: float = 3600.0,
    ) -> None:
        if mode not in ("strict", "check_only"):
            raise ConfigurationError(f"enforcement mode must be 'strict' or 'check_only', got {mode!r}")
        if lease_seconds <= 0:
            raise ConfigurationError("lease_seconds must be positive")
        self.storage = storage
        self.mode: Mode = mode
        self.lease_ms = int(lease_seconds * 1000)
        self.clock = clock
        self.loader = loader
        self.fail_open_budgets = fail_open_budgets
        self.fail_open_rate_limits = fail_open_rate_limits
        self.keys = KeySpace(storage.prefix)
        self.done_ttl_ms = max(int(idempotency_seconds * 1000), self.lease_ms)
        self._done_tag = self.keys.request("")  # + a request id that needs no escaping
        self._windows: dict[tuple[Any, ...], _Window] = {}
        self._rates: dict[tuple[Any, ...], tuple[str, int, int, int]] = {}
        self._seeding: dict[str, asyncio.Future[None]] = {}

    # ---- planning: limits → storage operations

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _plan(self, b: BudgetLimit, now_ms: int, estimate: int) -> _Plan:
        """The storage operation of one budget window for a request admitted at ``now_ms``."""
        scope, window = b.scope, b.window
        ident = (scope.type, scope.id, window.unit, window.count, window.fiscal_start_month, b.tz)
        w = self._windows.get(ident)
        if w is None or not w.start_ms <= now_ms < w.end_ms:
            w = self._refresh(b, ident, w, now_ms)
        limit = b.max_nanos if not b.temp_increase_nanos else b.effective_max_ms(now_ms)
        max_nanos = -1 if limit is None else limit
        step = w.bucket_ms
        if not step:
            ttl = w.expire_ms - now_ms if w.expire_ms else 0
            values = (w.key, w.lease_key, max_nanos, estimate, "s", 0, 0, ttl, self.loader is not None)
            return b, _new(BudgetOp, values), w, now_ms
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
            length + step + _SLACK_MS,
            self.loader is not None,
        )
        return b, _new(BudgetOp, values), w, now_ms

    def _refresh(self, b: BudgetLimit, ident: tuple[Any, ...], w: _Window | None, now_ms: int) -> _Window:
        """A budget's window moved to the period containing now (first use, or the period ended)."""
        scope, window = b.scope, b.window
        if window.unit == "rolling":
            if w is None:
                w = _Window(*self.keys.budget(scope, window, "rolling"))
                w.length_ms = window.count * 1000
                w.bucket_ms = bucket_ms_for(w.length_ms)
                w.end_ms = _NEVER_MS
        else:
            period = period_for(window, utc_from_ms(now_ms), b.tz)
            w = _Window(*self.keys.budget(scope, window, period.key))
            w.period = period
            w.start_ms = int(period.start.timestamp() * 1000)
            if window.unit == "lifetime":
                w.end_ms = _NEVER_MS
            else:
                w.end_ms = w.view_end_ms = int(period.end.timestamp() * 1000)
                w.expire_ms = 2 * w.end_ms - w.start_ms + _SLACK_MS
        if len(self._windows) >= _CACHE_MAX:
            self._windows.clear()
        self._windows[ident] = w
        return w

    def _plan_budget(self, b: BudgetLimit, now_ms: int, estimate: int) -> _Planned:
        return _Planned(*self._plan(b, now_ms, estimate))

    def _plan_rate(self, r: RateLimit, now_ms: int, tokens: int) -> RateOp:
        assert r.limit is not None
        ident = (r.scope.type, r.scope.id, r.kind, r.window_seconds)
        cached = self._rates.get(ident)
        if cached is None:
            if len(self._rates) >= _CACHE_MAX:
                self._rates.clear()
            if r.kind == "parallel":
                cached = (self.keys.rate(r), RATE_PARALLEL, 0, self.lease_ms + _SLACK_MS)
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
            return _new(RateOp, (key, kind, r.limit, 1, 0, 0, ttl))
        return _new(RateOp, (key, kind, r.limit, tokens if kind == RATE_TOKENS else 1, w, now_ms // w, ttl))

    # ---- admission

    async def admit(self, request: EnforcementRequest) -> Ticket:
        """Reserve the request's worst case against every budget and take its rate-limit units.

        Raises:
            BudgetExceeded: a budget window has no room (the strictest one is named).
            RateLimited: a rate limit has no room; ``retry_after`` says when to retry.
            StorageError: the storage failed and the fail-closed policy applies.
        """
        now_ms = int(self.clock() * 1000)
        strict = self.mode == "strict"
        estimate = request.estimate_nanos if strict and request.estimate_nanos > 0 else 0
        planned: list[_Plan] = []
        budget_ops: list[BudgetOp] = []
        soft = False
        for b in request.budgets:
            # An unlimited budget is only counted when it has a soft threshold to report.
            if b.max_nanos is None and b.soft_nanos is None:
                continue
            plan = self._plan(b, now_ms, estimate)
            bop = plan[1]
            if bop.max_nanos == 0:  # zero allows nothing, whatever the request costs
                await self._refuse_zero_budget(_Planned(*plan), estimate, now_ms)
            planned.append(plan)
            budget_ops.append(bop)
            if b.soft_nanos is not None:
                soft = True
        tokens = request.estimate_tokens if request.estimate_tokens > 0 else 0
        limits: list[RateLimit] = []
        rate_ops: list[RateOp] = []
        if request.rate_limits:
            for r in request.rate_limits:
                if r.limit is None:
                    continue
                if r.limit == 0:
                    raise RateLimited(
                        scope=str(r.scope),
                        kind=r.kind,
                        limit=0,
                        window_seconds=None if r.kind == "parallel" else r.window_seconds,
                        retry_after=None,
                    )
                limits.append(r)
                rate_ops.append(self._plan_rate(r, now_ms, tokens))
        op = _new(AdmitOp, (request.request_id, now_ms, self.lease_ms, strict, budget_ops, rate_ops))
        try:
            storage = self.storage
            result = storage.admit_nowait(op) if storage.nowait else await storage.admit(op)
            if result.status == "cold":
                result = await self._admit_cold(op, result, planned, now_ms)
        except StorageError:
            if (planned and not self.fail_open_budgets) or (rate_ops and not self.fail_open_rate_limits):
                raise
            log.warning(
                "counter storage unavailable: request %s admitted unchecked (fail-open)",
                request.request_id,
                exc_info=True,
            )
            return Ticket(request.request_id, now_ms, 0, tokens, enforced=False)
        if result.status != "ok":
            raise self._refusal(result, planned, limits, rate_ops, now_ms, strict)
        own = estimate if planned else 0
        return Ticket(
            request.request_id,
            now_ms,
            own,
            tokens,
            tuple(budget_ops),
            tuple(rate_ops),
            self._soft_crossed(planned, result, request.estimate_nanos) if soft else (),
            True,
            (own, planned, result.budgets, limits, rate_ops, result.rates),
        )

    async def _admit_cold(
        self, op: AdmitOp, result: AdmitResult, planned: list[_Plan], now_ms: int
    ) -> AdmitResult:
        """Seed the cold budget counters from the ledger and admit again (up to three times)."""
        for _ in range(3):
            if result.status != "cold":
                break
            await self._seed(planned, result.cold, now_ms)
            result = await self.storage.admit(op)
        return result

    def _refusal(
        self,
        result: AdmitResult,
        planned: list[_Plan],
        limits: list[RateLimit],
        rate_ops: list[RateOp],
        now_ms: int,
        strict: bool,
    ) -> Exception:
        if result.status == "cold":
            return StorageError("budget counters stayed cold after seeding them from the ledger")
        if result.status == "budget":
            return self._budget_error([_Planned(*p) for p in planned], result, now_ms, strict)
        return self._rate_error(limits, rate_ops, result)

    async def _seed(self, planned: Sequence[_Plan], cold: Sequence[int], now_ms: int) -> None:
        # One loader call per cold counter per process, however many requests wait on it.
        for i in cold:
            p = _Planned(*planned[i])
            key = p.op.key
            task = self._seeding.get(key)
            if task is None:
                task = self._seeding[key] = asyncio.ensure_future(self._seed_one(p, now_ms))
                task.add_done_callback(lambda _t, k=key: self._seeding.pop(k, None))  # type: ignore[misc]
            await asyncio.shield(task)

    async def _seed_one(self, p: _Planned, now_ms: int) -> None:
        assert self.loader is not None
        try:
            amount = await self.loader(p.budget, p.period)
        except Exception as exc:
            raise StorageError(
                f"could not read {p.budget.scope} {p.budget.window.name} from the ledger"
            ) from exc
        # A rolling window's ledger spend goes into the current bucket: it then leaves the
        # window late, never early (conservative).
        await self.storage.seed(p.op.key, {p.op.field: amount, "r": 0}, p.op.ttl_ms, now_ms)

    async def _refuse_zero_budget(self, p: _Planned, estimate: int, now_ms: int) -> None:
        try:
            states, _ = await self.storage.read(now_ms, [p.op], [])
            state = states[0] or BudgetState(0, 0)
        except StorageError:
            state = BudgetState(0, 0)
        raise BudgetExceeded(
            scope=str(p.budget.scope),
            window=p.budget.window.name,
            spend_nanos=state.spend,
            reserved_nanos=state.reserved,
            limit_nanos=0,
            requested_nanos=estimate,
            reset_at=None,
            retry_after=None,
        )

    def _budget_error(
        self, planned: list[_Planned], result: AdmitResult, now_ms: int, strict: bool
    ) -> BudgetExceeded:
        worst: tuple[int, int, int] | None = None
        for i, (p, s) in enumerate(zip(planned, result.budgets, strict=True)):
            m = p.op.max_nanos
            if m < 0:
                continue
            used = s.spend + s.reserved
            if (used + p.op.estimate_nanos > m) if strict else (used >= m):
                key = (m - used, -(p.end_ms or 1 << 62), i)
                if worst is None or key < worst:
                    worst = key
        assert worst is not None, "storage reported a budget failure no budget explains"
        p, s = planned[worst[2]], result.budgets[worst[2]]
        reset_ms: int | None
        if p.budget.window.unit == "lifetime":
            reset_ms = None
        elif p.op.bucket_ms:
            length = p.budget.window.count * 1000
            reset_ms = ((s.oldest_bucket + 1) * p.op.bucket_ms + length) if s.oldest_bucket >= 0 else now_ms
        else:
            reset_ms = p.end_ms
        never = p.op.estimate_nanos > p.op.max_nanos
        return BudgetExceeded(
            scope=str(p.budget.scope),
            window=p.budget.window.name,
            spend_nanos=s.spend,
            reserved_nanos=s.reserved,
            limit_nanos=p.op.max_nanos,
            requested_nanos=p.op.estimate_nanos,
            reset_at=None if reset_ms is None else utc_from_ms(reset_ms),
            retry_after=None if reset_ms is None or never else max(0.001, (reset_ms - now_ms) / 1000),
        )

    def _rate_error(self, limits: list[RateLimit], ops: list[RateOp], result: AdmitResult) -> RateLimited:
        worst: tuple[float, int] | None = None
        for i, (r, s) in enumerate(zip(ops, result.rates, strict=True)):
            if r.kind == RATE_PARALLEL:
                if s.current + 1 > r.limit:
                    # A slot frees when a request ends; we cannot know when: retry in 1 s.
                    wait = 1000.0
                    key = (wait, i)
                    worst = key if worst is None or key > worst else worst
                continue
            ticks = s.elapsed_ms * TICKS // r.window_ms
            if s.previous * (TICKS - ticks) + (s.current + r.amount) * TICKS > r.limit * TICKS:
                retry = rate_retry_ms(s, r.limit, r.amount, r.window_ms)
                key = (math.inf if retry is None else float(retry), i)
                worst = key if worst is None or key > worst else worst
        assert worst is not None, "storage reported a rate failure no limit explains"
        limit, wait = limits[worst[1]], worst[0]
        return RateLimited(
            scope=str(limit.scope),
            kind=limit.kind,
            limit=limit.limit or 0,
            window_seconds=None if limit.kind == "parallel" else limit.window_seconds,
            retry_after=None if wait == math.inf else max(0.001, wait / 1000),
        )

    @staticmethod
    def _soft_crossed(
        planned: list[_Plan], result: AdmitResult, estimate: int
    ) -> tuple[SoftBudgetCrossing, ...]:
        crossed: list[SoftBudgetCrossing] = []
        for p, s in zip(planned, result.budgets, strict=True):
            soft = p[0].soft_nanos
            if soft is not None:
                before = s.spend + s.reserved
                after = before + max(0, estimate)
                if after >= soft:
                    crossed.append(SoftBudgetCrossing(p[0], after, soft, before < soft))
        return tuple(crossed)

    # ---- settlement

    async def settle(self, ticket: Ticket, real_cost_nanos: int, real_tokens: int | None = None) -> bool:
        """Replace the reservation with the real cost; reconcile tokens; free the slot.

        Idempotent by request id: only the first settle counts (a settle after a release
        still charges the cost). A settle after the lease expired charges the cost once.
        Returns False when nothing changed (already settled, or not enforced). A storage
        failure is logged, not raised: the ledger still records the spend.
        """
        if real_cost_nanos < 0 or (real_tokens is not None and real_tokens < 0):
            raise ValueError("a real cost or token count cannot be negative")
        if not ticket.enforced:
            return False
        rid = ticket.request_id
        op = _new(
            SettleOp,
            (
                rid,
                int(self.clock() * 1000),
                self._done_tag + rid if ":" not in rid and "%" not in rid else self.keys.request(rid),
                self.done_ttl_ms,
                True,
                real_cost_nanos,
                ticket.estimate_tokens if real_tokens is None else real_tokens,
                ticket.budget_ops,
                ticket.rate_ops,
            ),
        )
        try:
            storage = self.storage
            return storage.settle_nowait(op) if storage.nowait else await storage.settle(op)
        except StorageError:
            self._not_recorded(op)
            return False

    async def release(self, ticket: Ticket) -> bool:
        """Give back the reservation, the reserved tokens and the slot (nothing was billed).

        The request still counts against request-rate limits. Idempotent; a release after
        a settle does nothing.
        """
        if not ticket.enforced:
            return False
        rid = ticket.request_id
        op = SettleOp(
            rid,
            self._now_ms(),
            self.keys.request(rid),
            self.done_ttl_ms,
            False,
            0,
            0,
            ticket.budget_ops,
            ticket.rate_ops,
        )
        try:
            return await self.storage.settle(op)
        except StorageError:
            self._not_recorded(op)
            return False

    @staticmethod
    def _not_recorded(op: SettleOp) -> None:
        log.warning(
            "counter storage unavailable: %s of %s not recorded in the counters",
            "settle" if op.settle else "release",
            op.request_id,
            exc_info=True,
        )

    async def renew(self, ticket: Ticket) -> int:
        """Extend the lease of a long-running request (a long stream); returns leases renewed."""
        if not ticket.enforced:
            return 0
        keys = [b.lease_key for b in ticket.budget_ops if self.mode == "strict"]
        keys += [r.key for r in ticket.rate_ops if r.kind == RATE_PARALLEL]
        return await self.storage.renew(ticket.request_id, self._now_ms(), self.lease_ms, keys)

    # ---- reading (explain)

    async def _read(
        self, request: EnforcementRequest, *, seed_cold: bool = False
    ) -> tuple[int, list[_Planned], list[BudgetState | None], list[RateLimit], list[RateOp], list[RateState]]:
        """The counters of ``request``. ``seed_cold``: a budget counter that does not exist
        yet (after a restart, a flush of Redis) is first seeded from the ledger exactly as
        :meth:`admit` seeds it, so what is read is what the next admission would see."""
        now_ms = self._now_ms()
        estimate = max(0, request.estimate_nanos) if self.mode == "strict" else 0
        planned = [self._plan_budget(b, now_ms, estimate) for b in request.budgets]
        limits = [r for r in request.rate_limits if r.limit is not None]
        ops = [self._plan_rate(r, now_ms, max(0, request.estimate_tokens)) for r in limits]
        states, rstates = await self.storage.read(now_ms, [p.op for p in planned], ops)
        cold = [i for i, st in enumerate(states) if st is None] if seed_cold and self.loader else []
        if cold:
            await self._seed(planned, cold, now_ms)
            states, rstates = await self.storage.read(now_ms, [p.op for p in planned], ops)
        return now_ms, planned, list(states), limits, ops, list(rstates)
