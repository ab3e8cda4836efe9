"""The calculator against the reference's worked examples, with the rates written out here.

Each expected value is the reference §1.10 figure; the rates are typed in from the same
table, so these tests do not depend on the bundled catalogue (test_costs_vectors.py checks
the same vectors through the public API and the real catalogue).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal as D
from typing import Any

from spendgate.core.pricing.calculator import Adjustment, calculate
from spendgate.core.pricing.spec import OffPeak, OffPeakWindow, PriceSpec, Rates, Threshold, Tier
from spendgate.core.usage.model import Usage

GPT_4O = PriceSpec(
    rates=Rates(input=D("2.5e-6"), output=D("1e-5"), cache_read=D("1.25e-6")),
    service_tiers={
        "batch": PriceSpec(rates=Rates(input=D("1.25e-6"), output=D("5e-6"))),
        "priority": PriceSpec(rates=Rates(input=D("4.25e-6"), output=D("1.7e-5"))),
    },
)
SONNET = PriceSpec(
    rates=Rates(
        input=D("3e-6"),
        output=D("1.5e-5"),
        cache_write=D("3.75e-6"),
        cache_write_1h=D("6e-6"),
        cache_read=D("3e-7"),
        web_search={"low": D("0.01"), "medium": D("0.01"), "high": D("0.01")},
    ),
    service_tiers={"batch": PriceSpec(rates=Rates(input=D("1.5e-6"), output=D("7.5e-6")))},
)


def price(spec: PriceSpec, usage: Usage, **kw: object) -> tuple[D, D]:
    b = calculate(spec, usage, model="m", **kw)  # type: ignore[arg-type]
    return b.prompt_cost, b.completion_cost


def test_1_plain_tokens() -> None:
    assert price(GPT_4O, Usage(input_tokens=1000, output_tokens=500)) == (D("0.0025"), D("0.005"))


def test_2_cached_tokens_are_part_of_the_input() -> None:
    usage = Usage(input_tokens=1000, cache_read_tokens=600, output_tokens=500)
    assert price(GPT_4O, usage) == (D("0.00175"), D("0.005"))


def test_3_anthropic_cache_read_and_write() -> None:
    usage = Usage(input_tokens=8000, cache_read_tokens=5000, cache_write_tokens=2000, output_tokens=300)
    assert price(SONNET, usage) == (D("0.012"), D("0.0045"))


def test_3b_one_hour_cache_writes() -> None:
    usage = Usage(input_tokens=3000, cache_write_tokens=2000, cache_write_1h_tokens=1500, output_tokens=300)
    assert price(SONNET, usage) == (D("0.013875"), D("0.0045"))


GEMINI_25_PRO = PriceSpec(
    rates=Rates(input=D("1.25e-6"), output=D("1e-5")),
    thresholds=(Threshold(200_000, Rates(input=D("2.5e-6"), output=D("1.5e-5"))),),
)


def test_4_long_context_reprices_the_whole_request() -> None:
    assert price(GEMINI_25_PRO, Usage(input_tokens=250_000, output_tokens=1000)) == (D("0.625"), D("0.015"))


def test_4b_threshold_is_strictly_above() -> None:
    assert price(GEMINI_25_PRO, Usage(input_tokens=200_000, output_tokens=1000)) == (D("0.25"), D("0.01"))


def test_4c_inclusive_threshold_providers() -> None:
    got = price(GEMINI_25_PRO, Usage(input_tokens=200_000, output_tokens=1000), inclusive_thresholds=True)
    assert got == (D("0.5"), D("0.015"))


def test_5_reasoning_without_a_reasoning_rate_bills_at_output() -> None:
    o3 = PriceSpec(rates=Rates(input=D("2e-6"), output=D("8e-6")))
    usage = Usage(input_tokens=1000, output_tokens=2000, reasoning_tokens=1500)
    assert price(o3, usage) == (D("0.002"), D("0.016"))


def test_5b_reasoning_rate_when_declared() -> None:
    spec = PriceSpec(rates=Rates(input=D("1e-6"), output=D("2e-6"), reasoning=D("4e-6")))
    b = calculate(spec, Usage(output_tokens=1000, reasoning_tokens=600), model="m")
    assert (b.output, b.reasoning) == (D("0.0008"), D("0.0024"))


def test_6_audio_tokens_on_both_sides() -> None:
    spec = PriceSpec(
        rates=Rates(input=D("2.5e-6"), output=D("1e-5"), input_audio=D("4e-5"), output_audio=D("8e-5"))
    )
    usage = Usage(input_tokens=1000, input_audio_tokens=800, output_tokens=500, output_audio_tokens=400)
    b = calculate(spec, usage, model="m")
    assert (b.prompt_cost, b.completion_cost, b.total) == (D("0.0325"), D("0.033"), D("0.0655"))
    assert b.audio == D("0.032") + D("0.032")


def test_7_transcription_per_second() -> None:
    whisper = PriceSpec(rates=Rates(input_per_second=D("1e-4"), output_per_second=D("1e-4")))
    got = price(whisper, Usage(seconds=D(60)), mode="audio_transcription")
    assert got == (D(0), D("0.006"))


def test_8_batch_rates() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert price(GPT_4O, usage, service_tier="batch") == (D("0.00125"), D("0.0025"))
    assert price(SONNET, usage, service_tier="batch") == (D("0.0015"), D("0.00375"))


def test_8c_batch_without_batch_cache_rate_does_not_discount_cached_tokens() -> None:
    # Reference §1.9, line 2: 2000 prompt (1000 cached), 100 completion → $0.003.
    usage = Usage(input_tokens=2000, cache_read_tokens=1000, output_tokens=100)
    b = calculate(GPT_4O, usage, model="m", service_tier="batch")
    assert b.total == D("0.003")


def test_8d_batch_falls_back_to_half_price() -> None:
    spec = PriceSpec(rates=Rates(input=D("2e-6"), output=D("8e-6"), cache_read=D("5e-7")))
    usage = Usage(input_tokens=1000, cache_read_tokens=400, output_tokens=100)
    b = calculate(spec, usage, model="m", service_tier="batch")
    assert (b.input, b.cache_read, b.output) == (D("0.0006"), D("0.0001"), D("0.0004"))


def test_10_speech_per_character() -> None:
    tts = PriceSpec(rates=Rates(input_per_character=D("1.5e-5")))
    assert price(tts, Usage(input_characters=1000), mode="audio_speech") == (D("0.015"), D(0))


QWEN_FLASH = PriceSpec(
    rates=Rates(),
    tiers=(
        Tier(0, 256_000, Rates(input=D("5e-8"), output=D("4e-7"))),
        Tier(256_000, 1_000_000, Rates(input=D("2.5e-7"), output=D("2e-6"))),
    ),
)


def test_11_tiers_are_all_or_nothing() -> None:
    assert price(QWEN_FLASH, Usage(input_tokens=300_000, output_tokens=1000)) == (D("0.075"), D("0.002"))
    assert price(QWEN_FLASH, Usage(input_tokens=1000, output_tokens=1000)) == (D("0.00005"), D("0.0004"))


def test_11c_tier_boundary_belongs_to_the_lower_tier_and_beyond_the_last_is_the_last() -> None:
    assert price(QWEN_FLASH, Usage(input_tokens=256_000))[0] == D("0.0128")
    assert price(QWEN_FLASH, Usage(input_tokens=2_000_000))[0] == D("0.5")


def test_12_embeddings() -> None:
    spec = PriceSpec(rates=Rates(input=D("2e-8"), output=D(0)))
    assert price(spec, Usage(input_tokens=10_000)) == (D("0.0002"), D(0))


def test_13_priority_tier() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert price(GPT_4O, usage, service_tier="priority") == (D("0.00425"), D("0.0085"))


def test_13b_unknown_service_tier_key_falls_back_to_standard() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert price(GPT_4O, usage, service_tier="flex") == (D("0.0025"), D("0.005"))


def test_15_images_per_image_with_variants() -> None:
    spec = PriceSpec(
        rates=Rates(
            output_per_image=D("0.04"), image_variants={"hd/1024x1792": D("0.12"), "1024x1024": D("0.05")}
        )
    )
    assert calculate(spec, Usage(images=2), model="m").total == D("0.08")
    assert calculate(spec, Usage(images=2, image_size="1024x1024"), model="m").total == D("0.10")
    hd = Usage(images=1, image_size="1024-x-1792", image_quality="HD")
    assert calculate(spec, hd, model="m").total == D("0.12")


def test_16_web_search_by_context_size() -> None:
    spec = PriceSpec(
        rates=Rates(
            input=D("2.5e-6"),
            output=D("1e-5"),
            web_search={"low": D("0.025"), "medium": D("0.0275"), "high": D("0.03")},
        )
    )
    usage = Usage(input_tokens=1000, output_tokens=500, web_search_requests=1, search_context_size="low")
    b = calculate(spec, usage, model="m")
    assert (b.tools, b.total) == (D("0.025"), D("0.0325"))
    assert calculate(spec, usage.with_(search_context_size=None), model="m").tools == D("0.0275")


def test_17_anthropic_web_search_count() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500, web_search_requests=3)
    assert calculate(SONNET, usage, model="m").total == D("0.0405")


DEEPSEEK_FLASH = PriceSpec(
    rates=Rates(input=D("3e-7"), output=D("1.2e-6"), cache_read=D("6e-9")),
    off_peak=OffPeak(
        rates=Rates(input=D("1.5e-7"), output=D("6e-7"), cache_read=D("3e-9")),
        windows=(
            OffPeakWindow(
                hours=((time(0), time(1)), (time(4), time(6)), (time(10), time(0))),
                weekdays=frozenset({1, 2, 3, 4, 5}),
            ),
            OffPeakWindow(hours=((time(0), time(0)),), weekdays=frozenset({6, 7})),
        ),
    ),
)


def test_18_off_peak_windows() -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    monday_peak = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
    monday_off = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)
    saturday = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert price(DEEPSEEK_FLASH, usage, at=monday_peak) == (D("0.0003"), D("0.0012"))
    assert price(DEEPSEEK_FLASH, usage, at=monday_off) == (D("0.00015"), D("0.0006"))
    assert price(DEEPSEEK_FLASH, usage, at=saturday) == (D("0.00015"), D("0.0006"))
    # The window 10:00-00:00 wraps to midnight; 23:59 is inside, 09:59 is not.
    assert price(DEEPSEEK_FLASH, usage, at=monday_peak.replace(hour=23, minute=59))[0] == D("0.00015")
    assert price(DEEPSEEK_FLASH, usage, at=monday_peak.replace(hour=9, minute=59))[0] == D("0.0003")


def test_19_discount_then_margin() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    adj = Adjustment(discount=D("0.05"), margin=D("0.10"), margin_fixed=D("0.001"))
    b = calculate(GPT_4O, usage, model="m", adjustment=adj)
    assert b.total == D("0.0088375")
    assert b.subtotal + b.discount + b.margin == b.total
    assert b.discount == D("-0.000375")


def test_uncached_cache_rate_defaults_to_input_rate() -> None:
    spec = PriceSpec(rates=Rates(input=D("1e-6"), output=D("2e-6")))
    usage = Usage(input_tokens=1000, cache_read_tokens=500, cache_write_tokens=200)
    b = calculate(spec, usage, model="m")
    assert (b.input, b.cache_read, b.cache_write) == (D("0.0003"), D("0.0005"), D("0.0002"))


def test_explicit_zero_cache_rate_is_honoured() -> None:
    spec = PriceSpec(rates=Rates(input=D("1e-6"), output=D("2e-6"), cache_read=D(0)))
    b = calculate(spec, Usage(input_tokens=1000, cache_read_tokens=500), model="m")
    assert (b.input, b.cache_read) == (D("0.0005"), D(0))


def test_tier_threshold_keys_overlay_the_base_threshold() -> None:
    spec = PriceSpec(
        rates=Rates(input=D("1e-6"), output=D("2e-6")),
        thresholds=(Threshold(100, Rates(input=D("2e-6"), output=D("4e-6"))),),
        service_tiers={
            "priority": PriceSpec(
                rates=Rates(input=D("3e-6")),
                thresholds=(Threshold(100, Rates(input=D("5e-6"))),),
            )
        },
    )
    b = calculate(spec, Usage(input_tokens=1000, output_tokens=1000), model="m", service_tier="priority")
    assert (b.input, b.output) == (D("0.005"), D("0.004"))


def test_inconsistent_usage_never_bills_a_token_twice() -> None:
    # Providers sometimes report cached > prompt; no bucket may go negative or be double-counted.
    spec = PriceSpec(rates=Rates(input=D("1e-6"), output=D("2e-6"), cache_read=D("5e-7")))
    b = calculate(
        spec, Usage(input_tokens=100, cache_read_tokens=400, output_tokens=10, reasoning_tokens=50), model="m"
    )
    assert (b.input, b.cache_read) == (D(0), D("0.00005"))
    assert (b.output, b.reasoning) == (D(0), D("0.00002"))


def test_the_fast_breakdown_constructor_equals_the_dataclass_one() -> None:
    from dataclasses import fields

    from spendgate.core.pricing.breakdown import CostBreakdown, priced_breakdown

    values = [D(i) / 7 for i in range(12)]
    usage = Usage(input_tokens=5)
    fast = priced_breakdown("m", "p/m", "p", usage, "flex", "v1", "bundled", *values)
    names = [f.name for f in fields(CostBreakdown) if f.init][-14:-2]
    items: dict[str, Any] = dict(zip(names, values, strict=True))
    slow = CostBreakdown(
        model="m",
        priced=True,
        resolved_model="p/m",
        provider="p",
        usage=usage,
        service_tier="flex",
        catalogue_version="v1",
        price_source="bundled",
        **items,
    )
    assert fast == slow
