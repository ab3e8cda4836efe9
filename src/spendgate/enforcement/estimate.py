"""The worst case a request can cost, for the reservation (DESIGN §1.4).

``prompt estimate × input rate + max output × max(output, reasoning) rate``, with the rates
the prompt selects (tier, long-context threshold, service tier), resolved by the same
calculator that prices the real call.

A target that names what its prices depend on (:class:`KeyedTarget`) has its worst cases
kept (:func:`target_worst_case`): the same call shape at the same prices is not priced again.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime
from decimal import getcontext
from typing import Any, Protocol

from spendgate.core.memo import remember
from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import effective_rates
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.core.pricing.spec import PriceSpec
from spendgate.core.usage.model import Usage, token_usage

__all__ = [
    "CHOICE_FIELDS",
    "OUTPUT_CAP_FIELDS",
    "KeyedTarget",
    "PricedTarget",
    "declared_choices",
    "declared_max_output",
    "target_worst_case",
    "worst_case_nanos",
    "worst_case_tokens",
]

OUTPUT_CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
"""Every field a client can cap output with; the largest counts, so none can be slipped past."""


CHOICE_FIELDS = ("n", "best_of")
"""How many completions a request has generated: ``n`` returned, ``best_of`` generated (and
billed) server-side; the larger counts."""


def declared_choices(payload: Mapping[str, Any]) -> int:
    """The number of completions the request makes the upstream generate (at least 1)."""
    counts = [v for f in CHOICE_FIELDS if isinstance(v := payload.get(f), int) and not isinstance(v, bool)]
    return max([1, *counts])


def declared_max_output(payload: Mapping[str, Any]) -> int | None:
    """The largest output cap the request declares (None: none declared)."""
    caps = [v for f in OUTPUT_CAP_FIELDS if isinstance(v := payload.get(f), int) and not isinstance(v, bool)]
    return max(caps) if caps else None


def worst_case_tokens(prompt_tokens: int, payload: Mapping[str, Any], default_output: int) -> int:
    """Prompt estimate + the largest declared output cap (else ``default_output``)."""
    cap = declared_max_output(payload)
    return max(0, prompt_tokens) + max(0, default_output if cap is None else cap)


def worst_case_nanos(
    spec: PriceSpec,
    prompt_tokens: int,
    max_output_tokens: int,
    *,
    service_tier: str | None = None,
    at: datetime | None = None,
    inclusive_thresholds: bool = False,
) -> int:
    """The reservation for a call: every prompt token at the input rate, every output
    token at the larger of the output and reasoning rates, at the tier the prompt selects."""
    prompt = max(0, prompt_tokens)
    rates = effective_rates(
        spec,
        _token_usage(prompt, 0),
        service_tier=service_tier,
        at=at,
        inclusive_thresholds=inclusive_thresholds,
    )
    out_rate = max(rates.output, rates.reasoning)
    return to_nano(rates.input * prompt + out_rate * max(0, max_output_tokens))


def _token_usage(input_tokens: int, output_tokens: int) -> Usage:
    """``Usage(input_tokens=…, output_tokens=…)``; built without re-validation when both are
    plain non-negative ints (a worst case builds two per call), else by the constructor
    (which refuses a bad count as it always has)."""
    plain = input_tokens.__class__ is int and output_tokens.__class__ is int
    if plain and min(input_tokens, output_tokens) >= 0:
        return token_usage(input_tokens, 0, 0, 0, 0, 0, 0, output_tokens, 0, 0, 0, 0)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


class PricedTarget(Protocol):
    """What a worst case needs of where a call is billed (``gateway.deployments.Deployment``
    is one): the model and provider it is priced as, its price layers, and its own pricing
    (with its discounts and margins)."""

    @property
    def price_model(self) -> str: ...

    @property
    def price_provider(self) -> str: ...

    @property
    def book(self) -> PriceBook: ...

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown: ...


class KeyedTarget(PricedTarget, Protocol):
    """A :class:`PricedTarget` whose worst cases may be kept (:func:`target_worst_case`)."""

    @property
    def worst_case_key(self) -> Hashable:
        """What the target's prices depend on, besides the usage, tier and time: two targets
        with equal keys price every usage alike, with ``book`` at ``price_model`` /
        ``price_provider``, and depend on the time only through the book's price history and
        off-peak windows (so the key holds the book: a new book is a new key)."""
        ...


def target_worst_case(
    target: PricedTarget,
    prompt_tokens: int,
    max_output_tokens: int,
    *,
    service_tier: str | None = None,
    at: datetime | None = None,
) -> int:
    """The most a call of ``prompt_tokens`` + ``max_output_tokens`` can cost at ``target``, in
    nano-USD, at ``service_tier`` (``priority``, ``batch`` …; None: standard): the larger of
    :func:`worst_case_nanos` on the target's price and the target's own price of that usage
    (discounts and margins applied). 0 when the model has no price: it is recorded unpriced,
    nothing to reserve. One function for live calls and batch lines alike.

    For a :class:`KeyedTarget` the result is kept (see :data:`_MEMO`) when it cannot depend
    on the time: the model's price has no history in any layer of the book and no off-peak
    window. The same counts at the same key, tier and decimal context then give the kept
    value, which is the value computed the first time."""
    memo_key = getattr(target, "worst_case_key", None)
    if memo_key is None or prompt_tokens.__class__ is not int or max_output_tokens.__class__ is not int:
        return _worst_case(target, prompt_tokens, max_output_tokens, service_tier, at)[0]
    stats = _MEMO_STATS
    if stats[1] > 0:  # stepping aside: the memo missed too often
        stats[1] -= 1
        return _worst_case(target, prompt_tokens, max_output_tokens, service_tier, at)[0]
    context = getcontext()
    key = (memo_key, prompt_tokens, max_output_tokens, service_tier, context.prec, context.rounding)
    found = _MEMO.get(key)
    if found is not None:
        stats[0] += 1
        return found
    worst, timeless = _worst_case(target, prompt_tokens, max_output_tokens, service_tier, at)
    if timeless:
        _remember(key, worst)
    return worst


def _worst_case(
    target: PricedTarget,
    prompt_tokens: int,
    max_output_tokens: int,
    service_tier: str | None,
    at: datetime | None,
) -> tuple[int, bool]:
    """:func:`target_worst_case` computed, and whether it holds at every moment (the price
    has no history and no off-peak window)."""
    book = target.book
    resolved = book.resolve(target.price_model, target.price_provider, at)
    if resolved is None:
        return 0, False
    worst = worst_case_nanos(
        resolved.spec, prompt_tokens, max_output_tokens, service_tier=service_tier, at=at
    )
    usage = _token_usage(prompt_tokens, max_output_tokens)
    breakdown = target.price(usage, at, served_tier=service_tier)
    if breakdown.priced:
        worst = max(worst, breakdown.total_nanos)
    timeless = (
        resolved.spec.off_peak is None
        and book.resolve_static(target.price_model, target.price_provider) is resolved
    )
    return worst, timeless


# -- the memo ----------------------------------------------------------------------------------
#
# A worst case is priced twice (the rates the prompt selects, then the target's own price of
# the worst usage): 4-7 us warm and several times that inside a real call, for every call
# that reserves against a budget. It depends on the target's key (model, provider, book,
# adjustments), the two counts, the service tier and the decimal context, and on the time
# only through price history and off-peak windows, which are never kept. Bounded, and it
# steps aside while it misses (every call with a new prompt size), as the calculator's
# memo does: a miss costs one key and one insertion.

_MEMO_SIZE = 4096
_MEMO_PAUSE = 16 * _MEMO_SIZE
"""Calls computed without the memo after a full memo saved less than one in eight."""
_MEMO: dict[tuple[object, ...], int] = {}
_MEMO_STATS = [0, 0]
"""[hits since the memo was last emptied, calls left before it is tried again]."""


def _remember(key: tuple[object, ...], worst: int) -> None:
    remember(_MEMO, _MEMO_STATS, key, worst, _MEMO_SIZE, _MEMO_PAUSE)
