"""Invariants of the calculator, on random prices and usage (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.core.money import from_nano
from spendgate.core.pricing.breakdown import ITEMS
from spendgate.core.pricing.calculator import Adjustment, calculate
from spendgate.core.pricing.spec import PriceSpec, Rates, Threshold
from spendgate.core.usage.model import Usage

# Rates as real catalogues have them: a few significant digits, 1e-9 .. 1e-3 USD per token.
rate = st.builds(
    lambda mantissa, exp: Decimal(mantissa).scaleb(exp),
    st.integers(1, 999),
    st.integers(-11, -5),
)
count = st.integers(0, 2_000_000)


@st.composite
def specs(draw: st.DrawFn) -> PriceSpec:
    inp = draw(rate)
    out = draw(rate)
    cache_read = draw(
        st.none() | st.builds(lambda f: inp * f, st.sampled_from([Decimal("0.1"), Decimal("0.5")]))
    )
    cache_write = draw(
        st.none() | st.builds(lambda f: inp * f, st.sampled_from([Decimal("1.25"), Decimal(2)]))
    )
    reasoning = draw(st.none() | st.just(out))
    thresholds: tuple[Threshold, ...] = ()
    if draw(st.booleans()):
        # Long-context rates are never cheaper than the base ones in real catalogues.
        thresholds = (
            Threshold(draw(st.integers(1, 300_000)), Rates(input=inp * 2, output=out * Decimal("1.5"))),
        )
    return PriceSpec(
        rates=Rates(
            input=inp, output=out, cache_read=cache_read, cache_write=cache_write, reasoning=reasoning
        ),
        thresholds=thresholds,
    )


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    text, cached, written, out = draw(count), draw(count), draw(count), draw(count)
    reasoning = draw(st.integers(0, out))
    return Usage(
        input_tokens=text + cached + written,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=out,
        reasoning_tokens=reasoning,
    )


def total(spec: PriceSpec, usage: Usage) -> Decimal:
    return calculate(spec, usage, model="m").total


@settings(max_examples=300)
@given(specs(), usages(), st.sampled_from(["text", "cached", "written", "out"]), st.integers(1, 100_000))
def test_cost_is_monotonic_in_each_token_count(spec: PriceSpec, usage: Usage, bucket: str, more: int) -> None:
    if bucket == "text":
        bigger = usage.with_(input_tokens=usage.input_tokens + more)
    elif bucket == "cached":
        bigger = usage.with_(
            input_tokens=usage.input_tokens + more, cache_read_tokens=usage.cache_read_tokens + more
        )
    elif bucket == "written":
        bigger = usage.with_(
            input_tokens=usage.input_tokens + more, cache_write_tokens=usage.cache_write_tokens + more
        )
    else:
        bigger = usage.with_(output_tokens=usage.output_tokens + more)
    assert total(spec, bigger) >= total(spec, usage)


@settings(max_examples=300)
@given(
    specs(),
    usages(),
    st.sampled_from(["0", "0.05", "0.5"]),
    st.sampled_from(["0", "0.1"]),
    st.sampled_from(["0", "0.001"]),
)
def test_items_sum_exactly_to_the_total(spec: PriceSpec, usage: Usage, d: str, m: str, fixed: str) -> None:
    adj = Adjustment(discount=Decimal(d), margin=Decimal(m), margin_fixed=Decimal(fixed))
    b = calculate(spec, usage, model="m", adjustment=adj)
    assert sum((getattr(b, n) for n in ITEMS), Decimal(0)) == b.total
    assert b.prompt_cost + b.completion_cost + b.discount + b.margin == b.total
    nanos = b.item_nanos()
    assert sum(nanos.values()) == b.total_nanos
    for name, n in nanos.items():
        assert abs(from_nano(n) - getattr(b, name)) < Decimal("1e-9")


@settings(max_examples=300)
@given(specs(), usages(), st.integers(0, 2_000_000))
def test_a_cached_token_never_costs_more_than_an_uncached_one(spec: PriceSpec, usage: Usage, k: int) -> None:
    uncached = usage.with_(cache_read_tokens=0)
    cached = usage.with_(cache_read_tokens=min(k, usage.input_tokens - usage.cache_write_tokens))
    if (spec.rates.cache_read or spec.rates.input or 0) <= (spec.rates.input or 0):
        assert total(spec, cached) <= total(spec, uncached)


@settings(max_examples=300)
@given(specs(), usages())
def test_nano_rounding_error_is_under_one_nano(spec: PriceSpec, usage: Usage) -> None:
    b = calculate(spec, usage, model="m")
    assert abs(from_nano(b.total_nanos) - b.total) <= Decimal("0.5e-9")
