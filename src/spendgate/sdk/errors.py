"""The SDK's refusal: :class:`BudgetExceededError`, raised before a call is sent.

A subclass of the gateway's :class:`~spendgate.errors.BudgetExceeded` (same fields, integer
nano-USD), with LiteLLM's names on top (``current_cost``, ``max_budget``), so code written
for ``litellm.BudgetExceededError`` catches it, and code written for spendgate's errors
does too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from spendgate.core.money import from_nano, tidy, usd_text
from spendgate.errors import BudgetExceeded

__all__ = ["BudgetExceededError"]


class BudgetExceededError(BudgetExceeded):
    """The global budget (``spendgate.max_budget``) has no room for this call.

    Attributes:
        current_cost: the spend of the current period, in USD (LiteLLM's name).
        max_budget: the limit, in USD (LiteLLM's name).
        worst_case: what this call reserves, in USD (0 in ``check_only`` mode).
        spend_nanos, reserved_nanos, limit_nanos, requested_nanos: the same, exact, in
            nano-USD (``reserved_nanos``: other calls in flight).
    """

    def __init__(
        self,
        *,
        window: str,
        spend_nanos: int,
        reserved_nanos: int,
        limit_nanos: int,
        requested_nanos: int,
        reset_at: datetime | None,
        unbounded_output: int | None = None,
    ) -> None:
        super().__init__(
            scope="spendgate.max_budget",
            window=window,
            spend_nanos=spend_nanos,
            reserved_nanos=reserved_nanos,
            limit_nanos=limit_nanos,
            requested_nanos=requested_nanos,
            reset_at=reset_at,
            retry_after=None
            if reset_at is None
            else max(0.0, (reset_at - datetime.now(reset_at.tzinfo)).total_seconds()),
        )
        self.current_cost: Decimal = tidy(from_nano(spend_nanos))
        self.max_budget: Decimal = tidy(from_nano(limit_nanos))
        self.worst_case: Decimal = tidy(from_nano(requested_nanos))
        message = (
            f"Budget has been exceeded! Current cost: {usd_text(spend_nanos)}, "
            f"Max budget: {usd_text(limit_nanos)}"
        )
        if requested_nanos:
            message += (
                f"; in flight: {usd_text(reserved_nanos)}; this call's worst case: "
                f"{usd_text(requested_nanos)}"
            )
        if window != "lifetime":
            message += f" (window {window}, resets at {reset_at.isoformat() if reset_at else 'never'})"
        if unbounded_output is not None:
            message += (
                f". The call declares no max_tokens, so its worst case assumes {unbounded_output} "
                "output tokens (the model's maximum): pass max_tokens (or max_completion_tokens / "
                "max_output_tokens) to bound it"
            )
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])
