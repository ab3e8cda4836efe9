"""Price one call: a :class:`PriceSpec` and a :class:`Usage` in, a :class:`CostBreakdown` out.

Rate resolution follows LiteLLM's semantics (reference §1.2–1.4, §1.8), in this order:

1. **Service tier.** ``flex`` / ``priority`` overlay their declared rates on the base rates
   key by key. ``batch`` uses the model's batch rates when it has a batch input rate — and
   then cached tokens without a batch cache-read rate are *not* discounted (they pay the
   batch input rate) — else 50 % of every standard rate.
2. **Tiers** (all-or-nothing): the tier with ``start < input_tokens <= end`` (above the last:
   the last) prices every token of the request. Undeclared tier rates fall back to the
   tier's input rate, except output, which falls back to the model's output rate.
3. **Long-context thresholds**: every threshold the prompt is strictly above (``>=`` for
   providers flagged inclusive) overlays its rates, ascending, so the highest wins, and it
   re-prices the whole request, not the tokens above the line.
4. **Off-peak**: inside a window, the off-peak rates overlay everything else.
5. **Fallbacks**: no cache-read or cache-write rate → the input rate (no discount); no 1 h
   write rate → the write rate; no reasoning rate → the output rate; no modality rate →
   the input or output rate of its side; cached audio → the cache-read rate.

Then token accounting (§1.3): uncached input = input − cache reads − cache writes; audio,
image and video input are carved out of it (capped at what remains) and the rest is text.
Output text = output − reasoning − audio − image − video. Non-token units (characters,
seconds, images, queries, web-search calls) are priced where the model declares a rate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal, getcontext
from operator import attrgetter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.core.money import ZERO
from spendgate.core.pricing.breakdown import ITEMS, CostBreakdown, priced_breakdown
from spendgate.core.pricing.spec import OffPeak, PriceSpec, Rates
from spendgate.core.usage.model import Usage

__all__ = ["Adjustment", "EffectiveRates", "calculate", "effective_rates"]

_HALF = Decimal("0.5")


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


@dataclass(frozen=True, slots=True)
class EffectiveRates:
    """The fully resolved per-unit rates one request pays; every token rate is set."""

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


@functools.lru_cache(maxsize=4096)
def _batch_rates(spec: PriceSpec) -> tuple[Rates, tuple[tuple[int, Rates], ...]]:
    """Base rates and thresholds for a batch request (reference §1.8)."""
    batch = spec.service_tiers.get("batch")
    base = spec.rates
    if batch is not None and batch.rates.input is not None:
        b = batch.rates
        halved = base.scaled(_HALF)
        # Declared batch rates win. Without one: output is half price; cache reads are not
        # discounted (ordinary batch input); modality input pays the batch input rate and
        # modality output the batch output rate; 1-hour cache writes are half price, as
        # providers bill every batch token.
        out = b.output if b.output is not None else halved.output
        rates = replace(
            base.overlay(b),
            output=out,
            cache_read=b.cache_read if b.cache_read is not None else b.input,
            cache_write=b.cache_write if b.cache_write is not None else b.input,
            cache_write_1h=b.cache_write_1h if b.cache_write_1h is not None else halved.cache_write_1h,
            reasoning=b.reasoning if b.reasoning is not None else out,
            input_audio=b.input_audio if b.input_audio is not None else b.input,
            cache_read_audio=b.cache_read_audio,
            input_image=b.input_image if b.input_image is not None else b.input,
            input_video=b.input_video if b.input_video is not None else b.input,
            output_audio=b.output_audio if b.output_audio is not None else out,
            output_image=b.output_image if b.output_image is not None else halved.output_image,
            output_video=b.output_video if b.output_video is not None else out,
        )
        thresholds = tuple((t.above, t.rates) for t in batch.thresholds)
        return rates, thresholds
    halved = base.scaled(_HALF)
    if halved.cache_read is None and halved.input is not None:
        halved = replace(halved, cache_read=halved.input)
    thresholds = tuple((t.above, t.rates.scaled(_HALF)) for t in spec.thresholds)
    return halved, thresholds


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
    """Resolve the rates this request pays (steps 1–5 of the module docstring).

    Only a few facts about the request select the rates (which tier, how many thresholds
    crossed, off-peak or not), so the resolved rates are cached on those facts.
    """
    if service_tier is None and not spec.tiers and not spec.thresholds and spec.off_peak is None:
        # The common case: nothing about the request changes the rates.
        standard = _STANDARD.get(spec)
        if standard is None:
            standard = _resolve(spec, None, -1, 0, False)
            if len(_STANDARD) < 8192:
                _STANDARD[spec] = standard
        return standard
    prompt = usage.input_tokens
    tier_index = -1
    if spec.tiers and prompt > 0:
        tier_index = len(spec.tiers) - 1
        for i, t in enumerate(spec.tiers):
            if t.start < prompt and (t.end is None or prompt <= t.end):
                tier_index = i
                break
    crossed = 0
    for above, _ in _levels(spec, service_tier):
        if prompt > above or (inclusive_thresholds and prompt >= above):
            crossed += 1
    off_peak = spec.off_peak is not None and _in_off_peak(spec.off_peak, at or datetime.now(UTC))
    return _resolve(spec, service_tier, tier_index, crossed, off_peak)


_STANDARD: dict[PriceSpec, EffectiveRates] = {}


@functools.lru_cache(maxsize=8192)
def _levels(spec: PriceSpec, service_tier: str | None) -> tuple[tuple[int, Rates], ...]:
    """The long-context thresholds that apply under ``service_tier``, ascending."""
    if service_tier == "batch":
        return _batch_rates(spec)[1]
    levels = {t.above: t.rates for t in spec.thresholds}
    tier_spec = spec.service_tiers.get(service_tier) if service_tier else None
    if tier_spec is not None:
        for t in tier_spec.thresholds:
            levels[t.above] = levels[t.above].overlay(t.rates) if t.above in levels else t.rates
    return tuple(sorted(levels.items()))


@functools.lru_cache(maxsize=8192)
def _resolve(
    spec: PriceSpec, service_tier: str | None, tier_index: int, crossed: int, off_peak: bool
) -> EffectiveRates:
    if service_tier == "batch":
        rates = _batch_rates(spec)[0]
    else:
        rates = spec.rates
        tier_spec = spec.service_tiers.get(service_tier) if service_tier else None
        if tier_spec is not None:
            tr = tier_spec.rates
            rates = rates.overlay(tr)
            if tr.output is not None and tr.reasoning is None:
                rates = replace(rates, reasoning=tr.output)  # a tier's output rate covers reasoning

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

    for _, level_rates in _levels(spec, service_tier)[:crossed]:
        rates = rates.overlay(level_rates)

    if off_peak and spec.off_peak is not None:
        rates = rates.overlay(spec.off_peak.rates)

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


def _image_price(rates: Rates, size: str | None, quality: str | None) -> Decimal | None:
    variants = rates.image_variants
    if variants:
        s = size.lower().replace("-x-", "x") if size else None
        q = quality.lower() if quality else None
        for key in (f"{q}/{s}" if q and s else None, s, q):
            if key is not None and key in variants:
                return variants[key]
    return rates.output_per_image


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
) -> CostBreakdown:
    """Price ``usage`` with ``spec``; see the module docstring for every rule.

    The parameters may be passed by position (the hot path in ``spendgate.costs`` does,
    to skip keyword parsing); everything after ``model`` is clearer by keyword.

    The items of a usage priced once are kept (:data:`_MEMO`): the same usage at the same
    spec is not priced again (see :func:`_memo_key`).
    """
    key = _memo_key(spec, usage, service_tier, inclusive_thresholds, mode) if adjustment is None else None
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
                *hit[0],
            )
            b._nanos = hit[1]
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
    )
    if key is not None:
        _remember(key, breakdown)
    return breakdown


# -- the memo ----------------------------------------------------------------------------------
#
# A usage's items depend only on the spec (immutable, hashed by identity), the usage's
# values, the service tier, the threshold rule, the mode and the decimal context's precision
# and rounding — and on the time only through off-peak windows, so a spec with off-peak
# rates is never memoized, nor is a call with an adjustment. The descriptive fields (model
# names, catalogue version, source) come from the caller on every call. Bounded; it steps
# aside while it misses (every call with a new usage), as the batch pricer's memo does.

_MEMO_SIZE = 4096
_MEMO_PAUSE = 16 * _MEMO_SIZE
"""Calls priced without the memo after a full memo saved less than one pricing in eight."""
_MEMO: dict[tuple[object, ...], tuple[tuple[Decimal, ...], int]] = {}
_MEMO_STATS = [0, 0]
"""[hits since the memo was last emptied, calls left before it is tried again]."""
_usage_values = attrgetter(*(f.name for f in fields(Usage)))
_items_of = attrgetter(*ITEMS[:-2])  # every item a calculation sets (no adjustment)


def _memo_key(
    spec: PriceSpec, usage: Usage, service_tier: str | None, inclusive_thresholds: bool, mode: str
) -> tuple[object, ...] | None:
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
        context.prec,
        context.rounding,
        _usage_values(usage),
    )


def _remember(key: tuple[object, ...], breakdown: CostBreakdown) -> None:
    memo = _MEMO
    if len(memo) >= _MEMO_SIZE:
        stats = _MEMO_STATS
        if stats[0] < _MEMO_SIZE // 8:
            stats[1] = _MEMO_PAUSE
        stats[0] = 0
        memo.clear()
        if stats[1] > 0:
            return
    memo[key] = (_items_of(breakdown), breakdown.total_nanos)


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

    # Multiplying Decimals is the expensive part; zero counts are skipped.
    if u.input_characters and flat.input_per_character is not None:
        input_cost = flat.input_per_character * u.input_characters
    else:
        input_cost = r.input * text_in if text_in else ZERO
    if u.queries and flat.input_per_query is not None:
        input_cost += flat.input_per_query * u.queries
    cache_read_cost = r.cache_read * (cache_read - cached_audio) if cache_read else ZERO
    if cached_audio:
        cache_read_cost += r.cache_read_audio * cached_audio
    cache_write_cost = r.cache_write * (cache_write - write_1h) if cache_write else ZERO
    if write_1h:
        cache_write_cost += r.cache_write_1h * write_1h
    input_audio_cost = r.input_audio * audio_in if audio_in else ZERO
    if u.input_images and flat.input_per_image is not None:
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
    if u.output_characters and flat.output_per_character is not None:
        output_cost += flat.output_per_character * u.output_characters
    reasoning_cost = r.reasoning * reasoning if reasoning else ZERO
    output_audio_cost = r.output_audio * audio_out if audio_out else ZERO
    output_image_cost = r.output_image * image_out if image_out else ZERO
    output_video_cost = r.output_video * video_out if video_out else ZERO

    if u.images and not u.output_tokens:
        # Per-image price, unless the model reported image tokens (gpt-image-1 is token-priced).
        per_image = _image_price(flat, u.image_size, u.image_quality)
        if per_image is not None:
            output_image_cost += per_image * u.images

    if u.seconds:
        # Per-second models (transcription, video, custom per-second deployments) bill the
        # seconds once, on the output side. Token-priced usage is not billed twice.
        per_second = flat.output_per_second
        if per_second is None:
            per_second = flat.per_second if flat.per_second is not None else flat.input_per_second
        token_priced = flat.has_token_rates and (u.input_tokens or u.output_tokens)
        if per_second is not None and not token_priced:
            if mode == "video_generation":
                output_video_cost += per_second * u.seconds
            else:
                output_cost += per_second * u.seconds

    tools = ZERO
    if u.web_search_requests and flat.web_search:
        size = (u.search_context_size or "medium").lower()
        per_call = flat.web_search.get(size) or flat.web_search.get("medium")
        if per_call is not None:
            tools += per_call * u.web_search_requests

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
