"""Why a request would be admitted or refused: every scope and window with its numbers.

The data behind ``/budget/explain``: it reads the counters (never adds to them: a cold
counter is seeded from the ledger, by setting, exactly as the admission seeds it) and
applies the same comparison as the admission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from spendgate.core.scopes import Scope
from spendgate.enforcement.enforcer import Enforcer
from spendgate.enforcement.limits import BudgetLimit, utc_from_ms
from spendgate.enforcement.reservation import EnforcementRequest

__all__ = ["ScopeWindowState", "Verdict", "explain"]

Verdict = Literal["unlimited", "ok", "soft_exceeded", "exceeded"]


@dataclass(frozen=True, slots=True)
class ScopeWindowState:
    """One budget window as the enforcer sees it now.

    ``verdict``: ``exceeded`` when this request would be refused by this window,
    ``soft_exceeded`` when it passes but is at or past the soft budget, ``ok`` otherwise,
    ``unlimited`` when there is no limit. ``period_end`` is None for lifetime windows.
    """

    scope: Scope
    window: str
    spend_nanos: int
    reserved_nanos: int
    limit_nanos: int | None
    soft_nanos: int | None
    period_start: datetime
    period_end: datetime | None
    verdict: Verdict
    budget: BudgetLimit


async def explain(enforcer: Enforcer, request: EnforcementRequest) -> list[ScopeWindowState]:
    """Every budget window of ``request`` with spend, reserved, limit, period and verdict.

    The request's ``estimate_nanos`` is what is tested against the room left (0 asks
    "is there any room at all?" in check-only terms: ``spend + reserved < limit``).
    """
    # A cold counter is seeded from the ledger first, like the admission does: after a
    # restart the answer is the ledger's spend, never a made-up zero.
    reading = await enforcer.read(request, seed_cold=True)
    now_ms = reading.now_ms
    strict = enforcer.mode == "strict"
    out = []
    for p, s in zip(reading.budgets, reading.budget_states, strict=True):
        spend, reserved = (s.spend, s.reserved) if s is not None else (0, 0)
        limit = p.budget.effective_max_ms(now_ms)
        used = spend + reserved
        estimate = p.op.estimate_nanos
        verdict: Verdict
        if limit is None:
            verdict = "unlimited"
        elif limit == 0 or ((used + estimate > limit) if strict and estimate else used >= limit):
            verdict = "exceeded"
        else:
            verdict = "ok"
        soft = p.budget.soft_nanos
        if verdict in ("ok", "unlimited") and soft is not None and used + estimate >= soft:
            verdict = "soft_exceeded"
        out.append(
            ScopeWindowState(
                p.budget.scope,
                p.budget.window.name,
                spend,
                reserved,
                limit,
                soft,
                p.period.start,
                utc_from_ms(p.end_ms) if p.end_ms else None,
                verdict,
                p.budget,
            )
        )
    return out
