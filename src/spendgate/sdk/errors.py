"""The SDK's refusal: one :class:`BudgetExceededError`, raised before a call is sent.

Both SDK budgets raise it: the global budget (``spendgate.max_budget``) and a
:class:`~spendgate.sdk.budget_manager.BudgetManager` user's budget (``check_and_reserve``),
so one ``except spendgate.BudgetExceededError`` catches either. It is a subclass of the
gateway's :class:`~spendgate.errors.BudgetExceeded` (same fields, integer nano-USD), with
LiteLLM's names on top (``current_cost``, ``max_budget``), so code written for
``litellm.BudgetExceededError`` catches it, and code written for spendgate's errors does too.

A refusal of an Anthropic call is raised as :func:`refusal_for` says: also an
``anthropic.AnthropicError``, so that the anthropic SDK hands it to the caller as it is.
"""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal
from typing import cast

from spendgate.core.money import from_nano, usd_text
from spendgate.errors import BudgetExceeded
from spendgate.sdk.amounts import plain_usd

__all__ = ["GLOBAL_SCOPE", "BudgetExceededError", "refusal_for"]

GLOBAL_SCOPE = "spendgate.max_budget"
"""The ``scope`` of a refusal by the global budget."""


class BudgetExceededError(BudgetExceeded):
    """A budget of the SDK has no room for this call (nothing was sent).

    Two forms, by who refused:

    * the global budget (``spendgate.max_budget``; no ``user``): LiteLLM's message
      ("Budget has been exceeded! Current cost: …"), ``current_cost``, ``max_budget`` and
      ``worst_case`` as exact ``Decimal`` USD;
    * a BudgetManager user (``user`` and ``project`` given): the gateway's message naming
      the user, window, spend, in-flight, limit and reset, plus ``hint``; ``current_cost``
      and ``max_budget`` as float USD (as LiteLLM's BudgetManager returns them) and ``user``.

    Attributes:
        current_cost: the spend of the current period, in USD (LiteLLM's name).
        max_budget: the limit, in USD (LiteLLM's name).
        worst_case: what this call reserves, in USD (0 in ``check_only`` mode).
        user: the BudgetManager user refused (None for the global budget).
        spend_nanos, reserved_nanos, limit_nanos, requested_nanos: the same, exact, in
            nano-USD (``reserved_nanos``: other calls in flight).
    """

    current_cost: Decimal | float
    max_budget: Decimal | float

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
        catalogued_output: bool = False,
        user: str | None = None,
        project: str | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        """Args:
        window: the budget window's name (``lifetime``, ``1d``, ``daily (calendar, …)``).
        spend_nanos, reserved_nanos, limit_nanos, requested_nanos: exact amounts.
        reset_at: when the window's period ends (None: never).
        unbounded_output: global budget: the output tokens assumed for a call without
            ``max_tokens`` (the message says how to bound it).
        catalogued_output: ``unbounded_output`` is the model's maximum in the catalogue;
            False: the catalogue knows none and the default was assumed (the message says
            which).
        user, project: a BudgetManager refusal: the user and the manager's project.
        retry_after: a BudgetManager refusal: seconds until a retry may pass (the
            global budget's is the time until ``reset_at``).
        hint: a BudgetManager refusal: appended to the message.
        """
        if user is None:  # the global budget: a retry may pass when its period resets
            retry_after = (
                None
                if reset_at is None
                else max(0.0, (reset_at - datetime.now(reset_at.tzinfo)).total_seconds())
            )
        scope = GLOBAL_SCOPE if user is None else f"user {user!r} of BudgetManager project {project!r}"
        super().__init__(
            scope=scope,
            window=window,
            spend_nanos=spend_nanos,
            reserved_nanos=reserved_nanos,
            limit_nanos=limit_nanos,
            requested_nanos=requested_nanos,
            reset_at=reset_at,
            retry_after=retry_after,
        )
        self.user = user
        self.worst_case: Decimal = plain_usd(from_nano(requested_nanos))
        if user is not None:
            self.current_cost = float(from_nano(spend_nanos))
            self.max_budget = float(from_nano(limit_nanos))
            if hint:
                self.args = (f"{self.args[0]}. {hint}",)
            return
        self.current_cost = plain_usd(from_nano(spend_nanos))
        self.max_budget = plain_usd(from_nano(limit_nanos))
        self.args = (
            _global_message(
                window,
                spend_nanos,
                reserved_nanos,
                limit_nanos,
                requested_nanos,
                reset_at,
                unbounded_output,
                catalogued_output,
            ),
        )

    def __str__(self) -> str:
        return str(self.args[0])


def _global_message(
    window: str,
    spend_nanos: int,
    reserved_nanos: int,
    limit_nanos: int,
    requested_nanos: int,
    reset_at: datetime | None,
    unbounded_output: int | None,
    catalogued_output: bool,
) -> str:
    message = (
        f"Budget has been exceeded! Current cost: {usd_text(spend_nanos)}, "
        f"Max budget: {usd_text(limit_nanos)}"
    )
    if requested_nanos:
        message += (
            f"; in flight: {usd_text(reserved_nanos)}; this call's worst case: {usd_text(requested_nanos)}"
        )
    if window != "lifetime":
        message += f" (window {window}, resets at {reset_at.isoformat() if reset_at else 'never'})"
    if unbounded_output is not None:
        basis = (
            "the model's maximum in the catalogue"
            if catalogued_output
            else "spendgate's default: the catalogue knows no maximum output for this model"
        )
        message += (
            f". The call declares no max_tokens, so its worst case assumes {unbounded_output} "
            f"output tokens ({basis}): pass max_tokens (or max_completion_tokens / "
            "max_output_tokens) to bound it"
        )
    return message


def refusal_for(endpoint: str) -> type[BudgetExceededError]:
    """The class a metered call's refusal is raised as. For Anthropic's messages (called by
    the anthropic SDK), a :class:`BudgetExceededError` that is also an
    ``anthropic.AnthropicError``: that SDK hands its own errors to the caller unchanged, but
    turns any other exception its transport raises into an ``APIConnectionError`` and
    retries it, so a plain refusal would reach the caller as a connection error, after
    being refused again on each retry. (The openai SDK lets any non-httpx error through.)"""
    if endpoint == "messages":
        module = sys.modules.get("anthropic")  # loaded: its SDK made the call
        base = getattr(module, "AnthropicError", None)
        if isinstance(base, type) and issubclass(base, Exception):
            return _anthropic_refusal(base)
    return BudgetExceededError


_ANTHROPIC_REFUSALS: dict[type[Exception], type[BudgetExceededError]] = {}


def _anthropic_refusal(base: type[Exception]) -> type[BudgetExceededError]:
    """The refusal class deriving from ``base`` (``anthropic.AnthropicError``), made once."""
    refusal = _ANTHROPIC_REFUSALS.get(base)
    if refusal is None:
        doc = "A :class:`BudgetExceededError` of an Anthropic call (see :func:`refusal_for`)."
        namespace = {"__module__": __name__, "__doc__": doc}
        made = type("AnthropicBudgetExceededError", (BudgetExceededError, base), namespace)
        refusal = _ANTHROPIC_REFUSALS.setdefault(base, cast("type[BudgetExceededError]", made))
    return refusal
