"""The BudgetManager's reservations: a call's worst case, the refusal when it does not fit,
and the conversions between its exact nano-USD and LiteLLM's float dollars.

Kept apart from :mod:`spendgate.sdk.budget_manager` so the manager reads as LiteLLM's
method list; everything here is pure (no store, no clock).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from spendgate.core.money import from_nano, limit_to_nano, to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.core.usage.model import Usage
from spendgate.costs import price
from spendgate.enforcement.estimate import target_worst_case
from spendgate.errors import UnpricedModelError
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.sdk.budget_store import BudgetRecord, current_period, reset_at
from spendgate.sdk.errors import BudgetExceededError

__all__ = [
    "BudgetExceededError",
    "Reservation",
    "WorstCase",
    "litellm_entry",
    "model_of",
    "nanos_to_usd",
    "refusal",
    "usd_to_nanos",
    "worst_case",
]


def usd_to_nanos(value: object, what: str, *, limit: bool = False) -> int:
    """A USD amount given as a number → nano-USD, rounded half to even (a float is read by
    its shortest repr, so ``0.1`` is exactly 100 000 000).

    Args:
        limit: the amount is a budget: a positive one that rounds to 0 nano-USD (``1e-20``)
            is refused, as 0 would mean nothing is allowed.

    Raises:
        TypeError: not a number.
        ValueError: negative, NaN or infinite; a limit that rounds to 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TypeError(f"{what} must be a number of USD, got {type(value).__name__}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except ArithmeticError:
        raise ValueError(f"{what} must be a number of USD, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite, non-negative number of USD, got {value!r}")
    if not limit:
        return to_nano(amount)
    try:
        return limit_to_nano(amount)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def nanos_to_usd(nanos: int) -> float:
    """nano-USD → float USD, only for LiteLLM-compatible return values."""
    return float(from_nano(nanos))


def model_of(response: Any) -> str | None:
    """The ``model`` a response (SDK object or dict) names, if any."""
    value = response.get("model") if isinstance(response, Mapping) else getattr(response, "model", None)
    return value if isinstance(value, str) and value else None


def litellm_entry(record: BudgetRecord) -> dict[str, Any]:
    """A record in LiteLLM's ``user_dict`` shape (float USD, epoch seconds)."""
    entry: dict[str, Any] = {"total_budget": nanos_to_usd(record.total_budget_nanos)}
    if record.duration_days is not None:
        entry["duration"] = record.duration_days
        entry["created_at"] = record.created_at.timestamp()
        entry["last_updated_at"] = record.last_updated_at.timestamp()
    entry["current_cost"] = nanos_to_usd(record.current_cost_nanos)
    entry["model_cost"] = {m: nanos_to_usd(c) for m, c in record.model_cost_nanos.items()}
    return entry


@dataclass(eq=False)
class Reservation:
    """Budget held for one call by ``check_and_reserve``, until it is settled or released
    (once: both are idempotent). It belongs to the process that made it."""

    id: str
    user: str
    model: str
    amount_nanos: int
    """The call's worst case, reserved."""
    prompt_tokens: int
    max_tokens: int
    expires_at: datetime
    """The lease: after this, the reservation stops holding budget even if never settled."""
    state: Literal["open", "settled", "released"] = "open"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def amount(self) -> float:
        """The reserved worst case in USD (float, for display)."""
        return nanos_to_usd(self.amount_nanos)


class _Target:
    """A model priced from a price book, as ``enforcement.estimate.target_worst_case`` needs."""

    def __init__(self, model: str, book: PriceBook) -> None:
        self.price_model = model
        self.price_provider = ""
        self.book = book
        self.worst_case_key = (_Target, model, book)
        """What its prices depend on (its worst cases are kept: ``estimate.KeyedTarget``)."""

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown:
        tier = served_tier or requested_tier
        return price(self.price_model, usage, service_tier=tier, at=at, book=self.book)


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The most a call can cost, and what it was computed from."""

    nanos: int
    prompt_tokens: int
    max_tokens: int
    declared: bool
    """Whether the caller gave ``max_tokens`` (else the catalogue's output limit counted)."""


def worst_case(
    model: str, messages: Sequence[Mapping[str, Any]], max_tokens: int | None, book: PriceBook, at: datetime
) -> WorstCase:
    """The gateway's worst case of a chat call: the prompt estimate at the input rate plus
    ``max_tokens`` (default: the model's catalogue output limit) at the larger of the output
    and reasoning rates, at the long-context tier the prompt selects.

    Raises:
        UnpricedModelError: no price is known for ``model``.
        ValueError: no ``max_tokens`` and no known output limit, or a negative one.
    """
    declared = max_tokens is not None
    if max_tokens is None:
        entry = book.find(model)
        max_tokens = entry.max_output_tokens if entry is not None else None
        if not max_tokens:
            raise ValueError(f"check_and_reserve needs max_tokens: {model!r} has no known output limit")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise ValueError(f"max_tokens must be a non-negative integer, got {max_tokens!r}")
    if book.resolve(model, None, at) is None:
        raise UnpricedModelError(model)
    prompt = estimate_prompt_tokens({"messages": list(messages)})
    nanos = target_worst_case(_Target(model, book), prompt, max_tokens, at=at)
    return WorstCase(nanos, prompt, max_tokens, declared)


def refusal(
    project: str, user: str, record: BudgetRecord, worst: WorstCase, now: datetime
) -> BudgetExceededError:
    """The error for a worst case that did not fit ``record`` at ``now``: the window, spend,
    in-flight, limit and reset; with a hint when no ``max_tokens`` bounded the call."""
    resets = reset_at(record, now)
    if record.duration is None:
        window = "lifetime"
    elif current_period(record, now) is not None:
        window = f"{record.duration} (calendar, {record.timezone})"
    else:
        window = f"{record.duration} (rolling {record.duration_days} days)"
    hint = None
    if not worst.declared:
        hint = (
            f"The call declared no max_tokens, so its worst case counts the model's {worst.max_tokens} "
            "output tokens; pass max_tokens to bound it"
        )
    can_pass_later = resets is not None and worst.nanos <= record.total_budget_nanos
    return BudgetExceededError(
        user=user,
        project=project,
        window=window,
        spend_nanos=record.current_cost_nanos,
        reserved_nanos=record.reserved_nanos,
        limit_nanos=record.total_budget_nanos,
        requested_nanos=worst.nanos,
        reset_at=resets,
        retry_after=max(0.0, (resets - now).total_seconds()) if can_pass_later and resets else None,
        hint=hint,
    )
