"""One rate table per price spec: service tier × range tier × long-context level × token kind.

A request pays one *cell* of its model's table, chosen by four facts: its service tier
(standard, batch, flex, priority), the all-or-nothing range tier its prompt falls in, the
highest long-context threshold its prompt crosses (its *level*) and whether it runs in an
off-peak window. Every cell is resolved once per spec and cached (a spec hashes by
identity), so pricing a call looks its cell up; nothing is resolved per call.

How a cell is built (LiteLLM's rules where it has one, reference §1.2 and §1.8):

1. **Standard**: the base rates, then the range tier's rates (undeclared ones fall back to
   the tier's input rate, output to the model's output rate), then every threshold at or
   below the level, ascending; each overlays the rates it declares.
2. **flex / priority**: the tier's declared rates overlay the standard cell. A rate the
   tier declares at its threshold for this level wins. A rate it declares only at its
   base is *composed* with the long-context premium in a long cell: tier base rate ×
   (standard rate at this level ÷ standard base rate), so a long priority request pays
   the priority premium on the long-context price, not one or the other. A rate the tier
   does not declare is the standard cell's, except reasoning, which follows the tier's
   output rate when the tier declares one.
3. **batch**: with a batch input rate, as flex / priority, and for what batch does not
   declare: output is half the standard cell's; cached tokens, cache writes and
   modality input pay the cell's batch input rate (no cache discount); 1-hour writes and
   image output are half the standard cell's; reasoning and other output pay the cell's
   batch output rate. Without a batch input rate, half of every standard cell rate. So a
   long batch request pays the batch rate of the long-context price for every token
   kind (gpt-5.4 above 272k: 2× input and 1.5× output in batch too).
4. **Off-peak** rates overlay the cell.
5. **Fallbacks, inside the cell**: no cache-read or cache-write rate → the cell's input
   rate; no 1 h write rate → the write rate; no reasoning rate → the cell's output rate;
   no modality rate → the cell's input or output rate; cached audio → the cache-read rate;
   an output rate of 0 with an image-token rate → the image-token rate (image models).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from spendgate.core.money import ZERO
from spendgate.core.pricing.spec import PriceSpec, Rates

__all__ = [
    "TOKEN_KINDS",
    "CellKey",
    "EffectiveRates",
    "cell",
    "levels",
    "rate_table",
    "service_tier_of",
]

TOKEN_KINDS = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "cache_write_1h",
    "reasoning",
    "input_audio",
    "cache_read_audio",
    "input_image",
    "input_video",
    "output_audio",
    "output_image",
    "output_video",
)
"""Per-token rate kinds: the columns of a cell."""

_HALF = Decimal("0.5")
# Composed rates: a terminating ratio is exact; any other is rounded at 28 significant
# digits, far below a nano-USD for any count of tokens.
_RATIO = Context(prec=28, rounding=ROUND_HALF_EVEN)

CellKey = tuple[str, int, int | None]
"""``(service tier or "standard", range-tier index or -1, level or None)``."""


@dataclass(frozen=True, slots=True)
class EffectiveRates:
    """The fully resolved per-unit rates of one cell; every token rate is set.

    ``rates`` keeps the cell's declared rates, for the per-unit prices (characters,
    seconds, images, queries, web-search calls), which have no fallbacks.
    """

    rates: Rates
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    reasoning: Decimal
    cache_read_audio: Decimal
    input_audio: Decimal
    input_image: Decimal
    input_video: Decimal
    output_audio: Decimal
    output_image: Decimal
    output_video: Decimal


def service_tier_of(spec: PriceSpec, service_tier: str | None) -> str | None:
    """The tier whose cells a request in ``service_tier`` pays: ``None`` (standard) for a
    tier the spec does not declare, except batch, which every spec prices (at half)."""
    if service_tier is None or service_tier == "batch" or service_tier in spec.service_tiers:
        return service_tier
    return None


def _priced_tier(spec: PriceSpec, service_tier: str | None) -> PriceSpec | None:
    """The tier's own spec, when its declared rates are used (batch needs an input rate)."""
    if service_tier is None:
        return None
    sub = spec.service_tiers.get(service_tier)
    if service_tier == "batch" and sub is not None and sub.rates.input is None:
        return None
    return sub


@functools.lru_cache(maxsize=8192)
def levels(spec: PriceSpec, service_tier: str | None) -> tuple[int, ...]:
    """The thresholds (``above`` token counts) that start a new level under ``service_tier``,
    ascending: the standard ones and the tier's own."""
    aboves = {t.above for t in spec.thresholds}
    sub = _priced_tier(spec, service_tier)
    if sub is not None:
        aboves.update(t.above for t in sub.thresholds)
    return tuple(sorted(aboves))


@functools.lru_cache(maxsize=8192)
def _standard(spec: PriceSpec, tier_index: int, level: int | None) -> Rates:
    """The standard cell's declared rates (step 1)."""
    rates = spec.rates
    if tier_index >= 0:
        tr = spec.tiers[tier_index].rates
        if tr.input is not None:
            rates = replace(
                rates.overlay(tr),
                output=tr.output if tr.output is not None else spec.rates.output,
                cache_read=tr.cache_read if tr.cache_read is not None else tr.input,
                cache_write=tr.cache_write if tr.cache_write is not None else tr.input,
                reasoning=tr.reasoning if tr.reasoning is not None else tr.output,
            )
    if level is not None:
        for t in spec.thresholds:
            if t.above <= level:
                rates = rates.overlay(t.rates)
    return rates


def _compose(rates: Rates, base: EffectiveRates, here: EffectiveRates) -> Rates:
    """A tier's base token rates carried to a long-context level by the standard ratio."""
    changes: dict[str, Any] = {}
    for kind in TOKEN_KINDS:
        value = getattr(rates, kind)
        if value is None:
            continue
        below, above = getattr(base, kind), getattr(here, kind)
        if below and above != below:
            changes[kind] = _RATIO.divide(_RATIO.multiply(value, above), below).normalize(_RATIO)
    return replace(rates, **changes) if changes else rates


def _tier_declared(spec: PriceSpec, sub: PriceSpec, tier_index: int, level: int | None) -> Rates:
    """What the tier declares for this cell: its base rates (composed) and its thresholds."""
    declared = sub.rates
    if level is None:
        return declared
    base = _fill(_standard(spec, tier_index, None))
    here = _fill(_standard(spec, tier_index, level))
    declared = _compose(declared, base, here)
    for t in sub.thresholds:
        if t.above <= level:
            declared = declared.overlay(t.rates)
    return declared


def _half(value: Decimal | None) -> Decimal | None:
    return value * _HALF if value is not None else None


def _batch(spec: PriceSpec, tier_index: int, level: int | None, std: Rates) -> Rates:
    sub = _priced_tier(spec, "batch")
    if sub is None:
        return std.scaled(_HALF)
    d = _tier_declared(spec, sub, tier_index, level)
    inp = d.input
    out = d.output if d.output is not None else _half(std.output)
    return replace(
        std.overlay(d),
        output=out,
        cache_read=d.cache_read if d.cache_read is not None else inp,
        cache_write=d.cache_write if d.cache_write is not None else inp,
        cache_write_1h=d.cache_write_1h if d.cache_write_1h is not None else _half(std.cache_write_1h),
        reasoning=d.reasoning if d.reasoning is not None else out,
        input_audio=d.input_audio if d.input_audio is not None else inp,
        cache_read_audio=d.cache_read_audio,
        input_image=d.input_image if d.input_image is not None else inp,
        input_video=d.input_video if d.input_video is not None else inp,
        output_audio=d.output_audio if d.output_audio is not None else out,
        output_image=d.output_image if d.output_image is not None else _half(std.output_image),
        output_video=d.output_video if d.output_video is not None else out,
    )


@functools.lru_cache(maxsize=16384)
def cell(
    spec: PriceSpec, service_tier: str | None, tier_index: int, level: int | None, off_peak: bool
) -> EffectiveRates:
    """The resolved rates of one cell (steps 1–5 of the module docstring).

    Args:
        spec: the price spec.
        service_tier: ``None`` (standard), ``"batch"``, ``"flex"`` or ``"priority"``; pass
            it through :func:`service_tier_of` first.
        tier_index: the range tier (index into ``spec.tiers``), or -1.
        level: the highest threshold crossed (one of :func:`levels`), or None.
        off_peak: whether the off-peak rates apply.
    """
    std = _standard(spec, tier_index, level)
    if service_tier == "batch":
        rates = _batch(spec, tier_index, level, std)
    else:
        sub = _priced_tier(spec, service_tier)
        if sub is None:
            rates = std
        else:
            d = _tier_declared(spec, sub, tier_index, level)
            rates = std.overlay(d)
            if d.output is not None and d.reasoning is None:
                rates = replace(rates, reasoning=None)  # the tier's output rate covers reasoning
    if off_peak and spec.off_peak is not None:
        rates = rates.overlay(spec.off_peak.rates)
    return _fill(rates)


def _fill(rates: Rates) -> EffectiveRates:
    """Step 5: every token rate set, from the cell's own rates."""
    inp = rates.input if rates.input is not None else ZERO
    out = rates.output if rates.output is not None else ZERO
    if not out and rates.output_image is not None:
        out = rates.output_image  # image models price all output as image tokens
    cache_read = rates.cache_read if rates.cache_read is not None else inp
    cache_write = rates.cache_write if rates.cache_write is not None else inp
    return EffectiveRates(
        rates=rates,
        input=inp,
        output=out,
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=rates.cache_write_1h if rates.cache_write_1h is not None else cache_write,
        reasoning=rates.reasoning if rates.reasoning is not None else out,
        cache_read_audio=rates.cache_read_audio if rates.cache_read_audio is not None else cache_read,
        input_audio=rates.input_audio if rates.input_audio is not None else inp,
        input_image=rates.input_image if rates.input_image is not None else inp,
        input_video=rates.input_video if rates.input_video is not None else inp,
        output_audio=rates.output_audio if rates.output_audio is not None else out,
        output_image=rates.output_image if rates.output_image is not None else out,
        output_video=rates.output_video if rates.output_video is not None else out,
    )


def rate_table(spec: PriceSpec) -> Mapping[CellKey, EffectiveRates]:
    """Every cell of ``spec`` outside off-peak windows, keyed ``(tier, range tier, level)``.

    Tiers: ``"standard"``, ``"batch"`` (always priced, at half without batch rates) and
    each other tier the spec declares. Levels: None (below every threshold), then each of
    :func:`levels` for that tier.
    """
    table: dict[CellKey, EffectiveRates] = {}
    names = ["standard", "batch", *sorted(set(spec.service_tiers) - {"batch"})]
    for name in names:
        tier = None if name == "standard" else name
        for index in range(len(spec.tiers)) if spec.tiers else (-1,):
            for level in (None, *levels(spec, tier)):
                table[(name, index, level)] = cell(spec, tier, index, level, False)
    return table
