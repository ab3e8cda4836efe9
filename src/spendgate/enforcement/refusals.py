"""Refusals: why an admission failed, and when a retry can succeed.

When the storage refuses a request, these name the limit to blame (the strictest failing
budget window, or the rate limit that frees last) with its numbers and the time to retry,
as :class:`~spendgate.errors.BudgetExceeded` or :class:`~spendgate.errors.RateLimited`.
They also report the soft budgets an admitted request reached. None of this is on the
path of an admitted request except :func:`soft_crossings`, and only when a budget has a
soft threshold.
"""

from __future__ import annotations

import math

from spendgate.enforcement.limits import RateLimit, utc_from_ms
from spendgate.enforcement.planning import BudgetPlan, PlannedBudget
from spendgate.enforcement.reservation import SoftBudgetCrossing
from spendgate.errors import BudgetExceeded, RateLimited, StorageError
from spendgate.stores.counters.base import (
    RATE_PARALLEL,
    TICKS,
    AdmitResult,
    BudgetState,
    RateOp,
    RateState,
    Storage,
)

__all__ = [
    "budget_refusal",
    "rate_refusal",
    "rate_retry_ms",
    "refusal",
    "soft_crossings",
    "zero_budget_refusal",
    "zero_rate_refusal",
]


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


def refusal(
    result: AdmitResult,
    planned: list[BudgetPlan],
    limits: list[RateLimit],
    rate_ops: list[RateOp],
    now_ms: int,
    strict: bool,
) -> Exception:
    """The error for an admission the storage refused (``result.status != "ok"``)."""
    if result.status == "cold":
        return StorageError("budget counters stayed cold after seeding them from the ledger")
    if result.status == "budget":
        return budget_refusal([PlannedBudget(*p) for p in planned], result, now_ms, strict)
    return rate_refusal(limits, rate_ops, result)


async def zero_budget_refusal(
    storage: Storage, p: PlannedBudget, estimate: int, now_ms: int
) -> BudgetExceeded:
    """A zero budget allows nothing, whatever the request costs; its numbers are read if possible."""
    try:
        states, _ = await storage.read(now_ms, [p.op], [])
        state = states[0] or BudgetState(0, 0)
    except StorageError:
        state = BudgetState(0, 0)
    return BudgetExceeded(
        scope=str(p.budget.scope),
        window=p.budget.window.name,
        spend_nanos=state.spend,
        reserved_nanos=state.reserved,
        limit_nanos=0,
        requested_nanos=estimate,
        reset_at=None,
        retry_after=None,
    )


def zero_rate_refusal(r: RateLimit) -> RateLimited:
    """A zero rate limit allows nothing; retrying cannot help."""
    return RateLimited(
        scope=str(r.scope),
        kind=r.kind,
        limit=0,
        window_seconds=None if r.kind == "parallel" else r.window_seconds,
        retry_after=None,
    )


def budget_refusal(
    planned: list[PlannedBudget], result: AdmitResult, now_ms: int, strict: bool
) -> BudgetExceeded:
    """The strictest failing window: the least room left, then the latest to reset."""
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


def rate_refusal(limits: list[RateLimit], ops: list[RateOp], result: AdmitResult) -> RateLimited:
    """The failing rate limit that frees last, with the wait until it has room."""
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


def soft_crossings(
    planned: list[BudgetPlan], result: AdmitResult, estimate: int
) -> tuple[SoftBudgetCrossing, ...]:
    """The soft budgets at or past their threshold with this request's estimate."""
    crossed: list[SoftBudgetCrossing] = []
    for p, s in zip(planned, result.budgets, strict=True):
        soft = p[0].soft_nanos
        if soft is not None:
            before = s.spend + s.reserved
            after = before + max(0, estimate)
            if after >= soft:
                crossed.append(SoftBudgetCrossing(p[0], after, soft, before < soft))
    return tuple(crossed)
