"""Price one call: a :class:`PriceSpec` and a :class:`Usage` in, a :class:`CostBreakdown` out.

The rates come from one cell of the spec's rate table (:mod:`~spendgate.core.pricing.table`:
service tier × range tier × long-context level × token kind, LiteLLM's semantics,
reference §1.2–1.4 and §1.8), chosen by the request's tier, prompt size and time:

* **Range tiers** (all-or-nothing): the tier with ``start < input_tokens <= end`` (above
  the last: the last) prices every token of the request.
* **Long-context thresholds**: the prompt is strictly above (``>=`` for providers flagged
  inclusive) re-prices the whole request, not the tokens above the line.
* **Service tiers** compose with both; **off-peak** windows overlay the cell.

Then token accounting (§1.3): uncached input = input − cache reads − cache writes; audio,
image and video input are carved out of it (capped at what remains) and the rest is text.
Output text = output − reasoning − audio − image − video.

Counts are priced where the model declares a non-zero rate, on the side it declares it:
seconds once, at the output, generic or input per-second rate (the first that is not
zero: LiteLLM writes Groq's Whisper price on the input side with 0 on the output side);
characters in place of text tokens; generated images by size/quality variant, else the
output per-image rate, else the input one; input images, queries and web-search calls at
their rates. A zero rate is not a price: a usage with something in it that prices at
exactly $0 is returned *unpriced* with a reason, unless the model is declared free.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal, getcontext
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.core.memo import remember
from spendgate.core.money import ZERO
from spendgate.core.pricing.breakdown import CostBreakdown, priced_breakdown
from spendgate.core.pricing.spec import OffPeak, PriceSpec, Rates
from spendgate.core.pricing.table import EffectiveRates, cell, levels, service_tier_of
from spendgate.core.usage.model import Usage

__all__ = ["Adjustment", "EffectiveRates", "calculate", "effective_rates"]


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A discount and a margin: ``total = subtotal × (1 − discount) × (1 + margin) + fixed``.

    Fractions, not percents: ``discount=Decimal("0.05")`` is 5 % off.
    """

    discount: Decimal = ZERO
    margin: Decimal = ZERO
    margin_fixed: Decimal = ZERO

    @property
    def is_identity(self) -> bool:
        return not (self.discount or self.margin or self.margin_fixed)


def _in_off_peak(off_peak: OffPeak, at: datetime) -> bool:
    utc = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    now = utc.time().replace(tzinfo=None)
    try:
        calendar = ZoneInfo(off_peak.weekday_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        calendar = ZoneInfo("UTC")
    weekday = utc.astimezone(calendar).isoweekday()
    for window in off_peak.windows:
        if window.weekdays is not None and weekday not in window.weekdays:
            continue
        for start, end in window.hours:
            if start < end:
                if start <= now < end:
                    return True
            elif now >= start or now < end:  # wraps midnight; start == end is all day
                return True
    return False


def effective_rates(
    spec: PriceSpec,
    usage: Usage,
    service_tier: str | None = None,
    at: datetime | None = None,
    inclusive_thresholds: bool = False,
) -> EffectiveRates:
    """The rates this request pays: the cell of the spec's rate table (see
    :mod:`~spendgate.core.pricing.table`) that its tier, prompt size and time select.
    """
    if service_tier is None and not spec.tiers and not spec.thresholds and spec.off_peak is None:
        # The common case: nothing about the request changes the rates.
        standard = _STANDARD.get(spec)
        if standard is None:
            standard = cell(spec, None, -1, None, False)
            if len(_STANDARD) < 8192:
                _STANDARD[spec] = standard
        return standard
    tier = service_tier_of(spec, service_tier)
    prompt = usage.input_tokens
    tier_index = -1
    if spec.tiers:
        # A prompt of 0 tokens (output alone) is in the first tier, not outside all of them.
        tier_index = len(spec.tiers) - 1
        for i, t in enumerate(spec.tiers):
            if t.start <= prompt and (t.end is None or prompt <= t.end):
                tier_index = i
                break
    level = None
    for above in levels(spec, tier):
        if prompt > above or (inclusive_thresholds and prompt >= above):
            level = above
        else:
            break
    off_peak = spec.off_peak is not None and _in_off_peak(spec.off_peak, at or datetime.now(UTC))
    return cell(spec, tier, tier_index, level, off_peak)


_STANDARD: dict[PriceSpec, EffectiveRates] = {}
"""Specs whose rates nothing about a request can change → their one standard cell."""


def _image_price(rates: Rates, size: str | None, quality: str | None) -> Decimal | None:
    """The price of one generated image: its size/quality variant (case-insensitive: the
    catalogue writes ``1K``), else the output per-image rate, else the input one (LiteLLM
    writes some image models' price on the input side)."""
    variants = rates.image_variants
    if variants:
        s = size.lower().replace("-x-", "x") if size else None
        q = quality.lower() if quality else None
        for key in (f"{q}/{s}" if q and s else None, s, q):
            if key is not None:
                price = variants.get(key)
                if price is None:
                    price = next((v for k, v in variants.items() if k.lower() == key), None)
                if price:
                    return price
    return rates.output_per_image or rates.input_per_image


def _priced_at_zero(
    model: str,
    resolved_model: str | None,
    provider: str | None,
    usage: Usage,
    service_tier: str | None,
    catalogue_version: str | None,
    price_source: str | None,
) -> CostBreakdown:
    """The unpriced result for a usage that the model's rates price at exactly $0."""
    counts = ", ".join(
        f"{f.name}={value}"
        for f in fields(usage)
        if (value := getattr(usage, f.name)) and f.name not in _DESCRIPTIVE
    )
    return CostBreakdown(
        model=model,
        priced=False,
        resolved_model=resolved_model,
        provider=provider,
        usage=usage,
        service_tier=service_tier,
        catalogue_version=catalogue_version,
        price_source=price_source,
        unpriced_reason=f"the price of {resolved_model or model!r} has no non-zero rate for this usage"
        f" ({counts}); it is unpriced, not $0 (an entry that is really free says free: true)",
    )


_DESCRIPTIVE = frozenset({"image_size", "image_quality", "search_context_size"})


def calculate(
    spec: PriceSpec,
    usage: Usage,
    model: str,
    resolved_model: str | None = None,
    provider: str | None = None,
    mode: str = "chat",
    service_tier: str | None = None,
    at: datetime | None = None,
    inclusive_thresholds: bool = False,
    adjustment: Adjustment | None = None,
    catalogue_version: str | None = None,
    price_source: str | None = None,
    free: bool = False,
) -> CostBreakdown:
    """Price ``usage`` with ``spec``; see the module docstring for every rule.

    The parameters may be passed by position (the hot path in ``spendgate.costs`` does,
    to skip keyword parsing); everything after ``model`` is clearer by keyword. ``free``:
    the model is declared free, so a usage its rates price at $0 is a priced $0.

    The items of a usage priced once are kept (:data:`_MEMO`): the same usage at the same
    spec is not priced again (see :func:`_memo_key`).
    """
    key = None if adjustment else _memo_key(spec, usage, service_tier, inclusive_thresholds, mode, free)
    if key is not None:
        hit = _MEMO.get(key)
        if hit is not None:
            _MEMO_STATS[0] += 1
            b = priced_breakdown(
                model,
                resolved_model,
                provider,
                usage,
                service_tier,
                catalogue_version,
                price_source,
                hit.input,
                hit.cache_read,
                hit.cache_write,
                hit.input_audio,
                hit.input_image,
                hit.input_video,
                hit.output,
                hit.reasoning,
                hit.output_audio,
                hit.output_image,
                hit.output_video,
                hit.tools,
            )
            b._nanos = hit._nanos  # the total in nano-USD, if it was read from the first one
            return b
    breakdown = _calculate(
        spec,
        usage,
        model,
        resolved_model,
        provider,
        mode,
        service_tier,
        at,
        inclusive_thresholds,
        adjustment,
        catalogue_version,
        price_source,
        free,
    )
    if key is not None and breakdown.priced:
        _remember(key, breakdown)
    return breakdown


# -- the memo ----------------------------------------------------------------------------------
#
# A usage's items depend only on the spec (immutable, hashed by identity), the usage's
# values, the service tier, the threshold rule, the mode, the free flag and the decimal
# context's precision and rounding — and on the time only through off-peak windows, so a
# spec with off-peak rates is never memoized, nor is a call with an adjustment. The
# descriptive fields (model names, catalogue version, source) come from the caller on every
# call. Bounded; it steps aside while it misses (every call with a new usage), as the batch
# pricer's memo does. It keeps the first breakdown itself, not a copy of its items and
# total: a miss then costs one dict insert, and a hit reuses the total in nano-USD once
# the first caller has read it (computing it for every miss cost more than a hit saves).

_MEMO_SIZE = 4096
_MEMO_PAUSE = 16 * _MEMO_SIZE
"""Calls priced without the memo after a full memo saved less than one pricing in eight."""
_MEMO: dict[tuple[object, ...], CostBreakdown] = {}
_MEMO_STATS = [0, 0]
"""[hits since the memo was last emptied, calls left before it is tried again]."""


def _memo_key(
    spec: PriceSpec, u: Usage, service_tier: str | None, inclusive_thresholds: bool, mode: str, free: bool
) -> tuple[object, ...] | None:
    """What a usage's items depend on, as one flat tuple (one allocation, one hash pass):
    the pricing facts, then every field of the usage in field order (a test checks that a
    usage differing in any one field gets another key). Slot reads spelled out: twice as
    fast as ``attrgetter`` over the 23 names."""
    if spec.off_peak is not None:
        return None
    stats = _MEMO_STATS
    if stats[1] > 0:
        stats[1] -= 1
        return None
    context = getcontext()
    return (
        spec,
        service_tier,
        inclusive_thresholds,
        mode,
        free,
        context.prec,
        context.rounding,
        u.input_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
        u.input_audio_tokens,
        u.cache_read_audio_tokens,
        u.input_image_tokens,
        u.input_video_tokens,
        u.output_tokens,
        u.reasoning_tokens,
        u.output_audio_tokens,
        u.output_image_tokens,
        u.output_video_tokens,
        u.images,
        u.input_images,
        u.image_size,
        u.image_quality,
        u.seconds,
        u.input_characters,
        u.output_characters,
        u.queries,
        u.web_search_requests,
        u.search_context_size,
    )


def _remember(key: tuple[object, ...], breakdown: CostBreakdown) -> None:
    remember(_MEMO, _MEMO_STATS, key, breakdown, _MEMO_SIZE, _MEMO_PAUSE)


def _calculate(
    spec: PriceSpec,
    usage: Usage,
    model: str,
    resolved_model: str | None,
    provider: str | None,
    mode: str,
    service_tier: str | None,
    at: datetime | None,
    inclusive_thresholds: bool,
    adjustment: Adjustment | None,
    catalogue_version: str | None,
    price_source: str | None,
    free: bool,
) -> CostBreakdown:
    # _STANDARD only holds specs whose rates nothing about a request can change.
    r = _STANDARD.get(spec) if service_tier is None else None
    if r is None:
        r = effective_rates(spec, usage, service_tier, at, inclusive_thresholds)
    u = usage
    flat = r.rates

    # ---- input side (conditional expressions, not min(): this runs on every request)
    total_in = u.input_tokens
    cache_read = u.cache_read_tokens if u.cache_read_tokens < total_in else total_in
    cache_write = u.cache_write_tokens
    if cache_write > total_in - cache_read:
        cache_write = total_in - cache_read
    write_1h = u.cache_write_1h_tokens if u.cache_write_1h_tokens < cache_write else cache_write
    remaining = total_in - cache_read - cache_write
    cached_audio = audio_in = image_in = video_in = 0
    if u.input_audio_tokens or u.input_image_tokens or u.input_video_tokens:
        cached_audio = min(u.cache_read_audio_tokens, cache_read)
        audio_in = min(max(u.input_audio_tokens - cached_audio, 0), remaining)
        remaining -= audio_in
        image_in = min(u.input_image_tokens, remaining)
        remaining -= image_in
        video_in = min(u.input_video_tokens, remaining)
        remaining -= video_in
    text_in = remaining

    # Multiplying Decimals is the expensive part; zero counts are skipped. A count's rate
    # counts only when it is not zero (a zero rate is a missing price, not a free one).
    if u.input_characters and flat.input_per_character:
        input_cost = flat.input_per_character * u.input_characters
    else:
        input_cost = r.input * text_in if text_in else ZERO
    if u.queries and flat.input_per_query:
        input_cost += flat.input_per_query * u.queries
    cache_read_cost = r.cache_read * (cache_read - cached_audio) if cache_read else ZERO
    if cached_audio:
        cache_read_cost += r.cache_read_audio * cached_audio
    cache_write_cost = r.cache_write * (cache_write - write_1h) if cache_write else ZERO
    if write_1h:
        cache_write_cost += r.cache_write_1h * write_1h
    input_audio_cost = r.input_audio * audio_in if audio_in else ZERO
    if u.input_images and flat.input_per_image:
        input_image_cost = flat.input_per_image * u.input_images
    else:
        input_image_cost = r.input_image * image_in if image_in else ZERO
    input_video_cost = r.input_video * video_in if video_in else ZERO

    # ---- output side
    total_out = u.output_tokens
    reasoning = u.reasoning_tokens if u.reasoning_tokens < total_out else total_out
    rest = total_out - reasoning
    audio_out = image_out = video_out = 0
    if u.output_audio_tokens or u.output_image_tokens or u.output_video_tokens:
        audio_out = min(u.output_audio_tokens, rest)
        rest -= audio_out
        image_out = min(u.output_image_tokens, rest)
        rest -= image_out
        video_out = min(u.output_video_tokens, rest)
        rest -= video_out
    text_out = rest

    output_cost = r.output * text_out if text_out else ZERO
    if u.output_characters and flat.output_per_character:
        output_cost += flat.output_per_character * u.output_characters
    reasoning_cost = r.reasoning * reasoning if reasoning else ZERO
    output_audio_cost = r.output_audio * audio_out if audio_out else ZERO
    output_image_cost = r.output_image * image_out if image_out else ZERO
    output_video_cost = r.output_video * video_out if video_out else ZERO

    if u.images and not u.output_tokens:
        # Per-image price, unless the model reported image tokens (gpt-image-1 is token-priced).
        per_image = _image_price(flat, u.image_size, u.image_quality)
        if per_image:
            output_image_cost += per_image * u.images

    if u.seconds and not (flat.has_token_rates and (u.input_tokens or u.output_tokens)):
        # Seconds are billed once, at the first non-zero per-second rate, on its side.
        # Token-priced usage is not billed twice.
        if flat.output_per_second:
            per_second_cost = flat.output_per_second * u.seconds
        elif flat.per_second:
            per_second_cost = flat.per_second * u.seconds
        elif flat.input_per_second:
            per_second_cost = ZERO
            input_cost += flat.input_per_second * u.seconds
        else:
            per_second_cost = ZERO
        if mode == "video_generation":
            output_video_cost += per_second_cost
        else:
            output_cost += per_second_cost

    tools = ZERO
    if u.web_search_requests and flat.web_search:
        size = (u.search_context_size or "medium").lower()
        per_call = flat.web_search.get(size) or flat.web_search.get("medium")
        if per_call:
            tools += per_call * u.web_search_requests

    if not (
        input_cost
        or output_cost
        or cache_read_cost
        or reasoning_cost
        or cache_write_cost
        or input_audio_cost
        or input_image_cost
        or input_video_cost
        or output_audio_cost
        or output_image_cost
        or output_video_cost
        or tools
    ) and not (free or usage.is_empty):
        return _priced_at_zero(
            model, resolved_model, provider, usage, service_tier, catalogue_version, price_source
        )

    breakdown = priced_breakdown(
        model,
        resolved_model,
        provider,
        usage,
        service_tier,
        catalogue_version,
        price_source,
        input_cost,
        cache_read_cost,
        cache_write_cost,
        input_audio_cost,
        input_image_cost,
        input_video_cost,
        output_cost,
        reasoning_cost,
        output_audio_cost,
        output_image_cost,
        output_video_cost,
        tools,
    )
    return adjust(breakdown, adjustment) if adjustment is not None else breakdown


def adjust(breakdown: CostBreakdown, adjustment: Adjustment) -> CostBreakdown:
    """Apply a discount, then a margin (percentage and fixed amount), to a breakdown."""
    if adjustment.is_identity or not breakdown.priced:
        return breakdown
    subtotal = breakdown.subtotal
    discount = -(subtotal * adjustment.discount)
    margin = (subtotal + discount) * adjustment.margin + adjustment.margin_fixed
    return replace(breakdown, discount=discount, margin=margin)
