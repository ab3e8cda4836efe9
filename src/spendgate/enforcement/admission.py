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
from spendgate.enforcement.storage.base import (
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
from spendgate.errors import BudgetExceeded, ConfigurationError, RateLimited, StorageError

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
    planned: list[_Planned],
    states: tuple[BudgetState, ...],
    limits: list[RateLimit],
    ops: list[RateOp],
    rstates: tuple[RateState, ...],
) -> tuple[tuple[BudgetView, ...], tuple[RateView, ...]]:
    views = tuple(
        BudgetView(
            p.budget,
            None if p.op.max_nanos < 0 else p.op.max_nanos,
            s.spend,
            s.reserved + own,
            p.start_ms,
            p.end_ms,
        )
        for p, s in zip(planned, states, strict=True)
    )
    rviews = []
    for r, op, rs in zip(limits, ops, rstates, strict=True):
        if op.kind == RATE_PARALLEL:
            rviews.append(RateView(r, rs.current + 1, 0))
            continue
        ticks = rs.elapsed_ms * TICKS // op.window_ms
        used = -(-(rs.previous * (TICKS - ticks) + (rs.current + op.amount) * TICKS) // TICKS)
        rviews.append(RateView(r, used, op.window_ms - rs.elapsed_ms))
    return views, tuple(rviews)


@dataclass(slots=True)
class _Planned:
    budget: BudgetLimit
    op: BudgetOp
    start_ms: int
    end_ms: int  # 0: lifetime
    _period: Period | None  # None: rolling, built on demand

    @property
    def period(self) -> Period:
        if self._period is None:
            self._period = Period(utc_from_ms(self.start_ms), utc_from_ms(self.end_ms), "rolling")
        return self._period


_LIFETIME = Period(utc_from_ms(0), utc_from_ms(0), "")


class Admission:
    """Admits, settles and releases requests against one storage.

    Args:
        storage: where counters live (:func:`~spendgate.enforcement.storage_from_url`).
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
        self._periods: dict[tuple[Any, ...], tuple[int, int, Period, str, str]] = {}
        self._rate_keys: dict[tuple[Any, ...], str] = {}
        self._seeding: dict[str, asyncio.Future[None]] = {}

    # ---- planning: limits → storage operations

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _calendar(self, b: BudgetLimit, now_ms: int) -> tuple[int, int, Period, str, str]:
        """The period containing now, and its keys; cached until the period ends."""
        w = b.window
        ident = (b.scope.type, b.scope.id, w.unit, w.count, w.fiscal_start_month, b.tz)
        cached = self._periods.get(ident)
        if cached is not None and cached[0] <= now_ms < cached[1]:
            return cached
        window = b.window
        period = period_for(window, utc_from_ms(now_ms), b.tz)
        start_ms = int(period.start.timestamp() * 1000)
        end_ms = int(period.end.timestamp() * 1000) if window.unit != "lifetime" else 1 << 62
        key, lease = self.keys.budget(b.scope, window, period.key)
        if len(self._periods) > 100_000:
            self._periods.clear()
        entry = self._periods[ident] = (start_ms, end_ms, period, key, lease)
        return entry

    def _plan_budget(self, b: BudgetLimit, now_ms: int, estimate: int) -> _Planned:
        window = b.window
        limit = b.max_nanos if not b.temp_increase_nanos else b.effective_max_ms(now_ms)
        max_nanos = -1 if limit is None else limit
        seed = self.loader is not None
        if window.unit == "rolling":
            length = window.count * 1000
            step = bucket_ms_for(length)
            ident = (b.scope.type, b.scope.id, "rolling", window.count, 0, None)
            cached = self._periods.get(ident)
            if cached is None:
                key, lease = self.keys.budget(b.scope, window, "rolling")
                cached = self._periods[ident] = (0, 0, _LIFETIME, key, lease)
            op = BudgetOp(
                cached[3],
                cached[4],
                max_nanos,
                estimate,
                f"b{now_ms // step}",
                step,
                (now_ms - length) // step,
                length + step + _SLACK_MS,
                seed,
            )
            return _Planned(b, op, now_ms - length, now_ms, None)
        start_ms, end_ms, period, key, lease = self._calendar(b, now_ms)
        if window.unit == "lifetime":
            ttl, end_ms = 0, 0
        else:
            ttl = end_ms - now_ms + (end_ms - start_ms) + _SLACK_MS
        return _Planned(
            b, BudgetOp(key, lease, max_nanos, estimate, "s", 0, 0, ttl, seed), start_ms, end_ms, period
        )

    def _plan_rate(self, r: RateLimit, now_ms: int, tokens: int) -> RateOp:
        assert r.limit is not None
        ident = (r.scope.type, r.scope.id, r.kind, r.window_seconds)
        key = self._rate_keys.get(ident)
        if key is None:
            if len(self._rate_keys) > 100_000:
                self._rate_keys.clear()
            key = self._rate_keys[ident] = self.keys.rate(r)
        if r.kind == "parallel":
            return RateOp(key, RATE_PARALLEL, r.limit, 1, 0, 0, self.lease_ms + _SLACK_MS)
        w = r.window_ms
        if r.kind == "tokens":
            return RateOp(key, RATE_TOKENS, r.limit, tokens, w, now_ms // w, 2 * w + 1000)
        return RateOp(key, RATE_WINDOW, r.limit, 1, w, now_ms // w, 2 * w + 1000)

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
        planned: list[_Planned] = []
        budget_ops: list[BudgetOp] = []
        for b in request.budgets:
            # An unlimited budget is only counted when it has a soft threshold to report.
            if b.max_nanos is not None or b.soft_nanos is not None:
                p = self._plan_budget(b, now_ms, estimate)
                if p.op.max_nanos == 0:  # zero allows nothing, whatever the request costs
                    await self._refuse_zero_budget(p, estimate, now_ms)
                planned.append(p)
                budget_ops.append(p.op)
        tokens = request.estimate_tokens if request.estimate_tokens > 0 else 0
        limits: list[RateLimit] = []
        rate_ops: list[RateOp] = []
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
        op = AdmitOp(request.request_id, now_ms, self.lease_ms, strict, budget_ops, rate_ops)
        try:
            result = await self.storage.admit(op)
            for _ in range(3):
                if result.status != "cold":
                    break
                await self._seed(planned, result.cold, now_ms)
                result = await self.storage.admit(op)
        except StorageError:
            if (planned and not self.fail_open_budgets) or (rate_ops and not self.fail_open_rate_limits):
                raise
            log.warning(
                "counter storage unavailable: request %s admitted unchecked (fail-open)",
                request.request_id,
                exc_info=True,
            )
            return Ticket(request.request_id, now_ms, 0, tokens, enforced=False)
        if result.status == "cold":
            raise StorageError("budget counters stayed cold after seeding them from the ledger")
        if result.status == "budget":
            raise self._budget_error(planned, result, now_ms, strict)
        if result.status == "rate":
            raise self._rate_error(limits, rate_ops, result)
        return self._ticket(request, now_ms, strict, planned, limits, rate_ops, result, op)

    async def _seed(self, planned: list[_Planned], cold: Sequence[int], now_ms: int) -> None:
        # One loader call per cold counter per process, however many requests wait on it.
        for i in cold:
            p = planned[i]
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

    def _ticket(
        self,
        request: EnforcementRequest,
        now_ms: int,
        strict: bool,
        planned: list[_Planned],
        limits: list[RateLimit],
        rate_ops: list[RateOp],
        result: AdmitResult,
        op: AdmitOp,
    ) -> Ticket:
        own = max(0, request.estimate_nanos) if strict and planned else 0
        crossed: list[SoftBudgetCrossing] = []
        for p, s in zip(planned, result.budgets, strict=True):
            soft = p.budget.soft_nanos
            if soft is not None:
                before = s.spend + s.reserved
                after = before + max(0, request.estimate_nanos)
                if after >= soft:
                    crossed.append(SoftBudgetCrossing(p.budget, after, soft, before < soft))
        return Ticket(
            request.request_id,
            now_ms,
            own,
            max(0, request.estimate_tokens),
            tuple(op.budgets),
            tuple(rate_ops),
            tuple(crossed),
            _source=(own, planned, result.budgets, limits, rate_ops, result.rates),
        )

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
        return await self._finish(ticket, True, real_cost_nanos, real_tokens)

    async def release(self, ticket: Ticket) -> bool:
        """Give back the reservation, the reserved tokens and the slot (nothing was billed).

        The request still counts against request-rate limits. Idempotent; a release after
        a settle does nothing.
        """
        return await self._finish(ticket, False, 0, 0)

    async def _finish(self, ticket: Ticket, settle: bool, cost: int, tokens: int | None) -> bool:
        if not ticket.enforced:
            return False
        op = SettleOp(
            ticket.request_id,
            self._now_ms(),
            self.keys.request(ticket.request_id),
            self.done_ttl_ms,
            settle,
            cost,
            ticket.estimate_tokens if tokens is None else tokens,
            ticket.budget_ops,
            ticket.rate_ops,
        )
        try:
            return await self.storage.settle(op)
        except StorageError:
            what = "settle" if settle else "release"
            log.warning(
                "counter storage unavailable: %s of %s not recorded in the counters",
                what,
                ticket.request_id,
                exc_info=True,
            )
            return False

    async def renew(self, ticket: Ticket) -> int:
        """Extend the lease of a long-running request (a long stream); returns leases renewed."""
        if not ticket.enforced:
            return 0
        keys = [b.lease_key for b in ticket.budget_ops if self.mode == "strict"]
        keys += [r.key for r in ticket.rate_ops if r.kind == RATE_PARALLEL]
        return await self.storage.renew(ticket.request_id, self._now_ms(), self.lease_ms, keys)

    # ---- reading (explain)

    async def _read(
        self, request: EnforcementRequest
    ) -> tuple[int, list[_Planned], list[BudgetState | None], list[RateLimit], list[RateOp], list[RateState]]:
        now_ms = self._now_ms()
        estimate = max(0, request.estimate_nanos) if self.mode == "strict" else 0
        planned = [self._plan_budget(b, now_ms, estimate) for b in request.budgets]
        limits = [r for r in request.rate_limits if r.limit is not None]
        ops = [self._plan_rate(r, now_ms, max(0, request.estimate_tokens)) for r in limits]
        states, rstates = await self.storage.read(now_ms, [p.op for p in planned], ops)
        return now_ms, planned, list(states), limits, ops, list(rstates)
