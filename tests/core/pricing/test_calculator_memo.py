"""The calculator's memo: a usage priced again at the same spec gives the same breakdown,
to the nano, as pricing it afresh; what the memo must not cover it does not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import time
from decimal import Context, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_calculator_properties import specs, usages

from spendgate.core.pricing import calculator
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import Adjustment, calculate
from spendgate.core.pricing.spec import OffPeak, OffPeakWindow, PriceSpec, Rates
from spendgate.core.usage.model import Usage

D = Decimal
SPEC = PriceSpec(rates=Rates(input=D("0.0000025"), output=D("0.00001")))


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    calculator._MEMO.clear()
    calculator._MEMO_STATS[:] = [0, 0]
    yield
    calculator._MEMO.clear()
    calculator._MEMO_STATS[:] = [0, 0]


def _afresh(spec: PriceSpec, usage: Usage, **kw: object) -> CostBreakdown:
    """The breakdown with the memo off."""
    saved = calculator._MEMO_STATS[1]
    calculator._MEMO_STATS[1] = 10**9
    try:
        return calculate(spec, usage, "m", **kw)  # type: ignore[arg-type]
    finally:
        calculator._MEMO_STATS[1] = saved


@settings(max_examples=300, deadline=None)
@given(specs(), usages(), st.sampled_from([None, "batch", "flex", "priority"]))
def test_a_remembered_price_is_the_fresh_price(spec: PriceSpec, usage: Usage, tier: str | None) -> None:
    first = calculate(spec, usage, "m", service_tier=tier)
    again = calculate(spec, usage.with_(), "m", service_tier=tier)  # an equal usage, another object
    fresh = _afresh(spec, usage, service_tier=tier)
    assert first == again == fresh
    assert first.total_nanos == again.total_nanos == fresh.total_nanos


def test_a_hit_carries_the_callers_names_and_usage() -> None:
    usage = Usage(input_tokens=1000, output_tokens=10)
    calculate(SPEC, usage, "gpt-4o", "openai/gpt-4o", "openai", catalogue_version="v1", price_source="b")
    other = Usage(input_tokens=1000, output_tokens=10)
    hit = calculate(SPEC, other, "alias", "openai/alias", "azure", catalogue_version="v2", price_source="op")
    assert calculator._MEMO_STATS[0] == 1
    assert (hit.model, hit.resolved_model, hit.provider, hit.catalogue_version, hit.price_source) == (
        "alias",
        "openai/alias",
        "azure",
        "v2",
        "op",
    )
    assert hit.usage is other
    assert hit.total_nanos == 1000 * 2500 + 10 * 10000


def test_what_the_memo_does_not_cover() -> None:
    usage = Usage(input_tokens=1000, output_tokens=10)
    off_peak = PriceSpec(
        rates=SPEC.rates,
        off_peak=OffPeak(Rates(input=D("0.000001")), (OffPeakWindow(((time(0), time(0)),)),)),
    )
    calculate(off_peak, usage, "m")  # the time picks the rates
    calculate(SPEC, usage, "m", adjustment=Adjustment(discount=D("0.1")))
    assert not calculator._MEMO
    calculate(SPEC, usage, "m")
    with localcontext(Context(prec=3)):  # another precision prices afresh
        narrow = calculate(SPEC, Usage(input_tokens=12345, output_tokens=0), "m")
    assert narrow.total == D("0.0309")  # 12345 × 0.0000025 = 0.0308625, to 3 digits
    assert len(calculator._MEMO) == 2


def test_the_memo_steps_aside_while_it_misses() -> None:
    for n in range(calculator._MEMO_SIZE + 1):
        calculate(SPEC, Usage(input_tokens=n, output_tokens=1), "m")
    assert calculator._MEMO_STATS[1] == calculator._MEMO_PAUSE
    assert not calculator._MEMO
    calculate(SPEC, Usage(input_tokens=1, output_tokens=1), "m")
    assert not calculator._MEMO  # paused: priced afresh, nothing kept


def test_a_usage_that_differs_in_any_field_is_priced_afresh() -> None:
    """The memo key spells out the usage's fields: it must name every one of them, or a
    usage differing only in a field it left out would be given another usage's price."""
    base = Usage(input_tokens=100, output_tokens=10)
    changed: dict[str, object] = {"image_size": "1024x1024", "image_quality": "hd", "seconds": D("1.5")}
    changed["search_context_size"] = "high"
    keys = {calculator._memo_key(SPEC, base, None, False, "chat", False)}
    for f in fields(Usage):
        value = changed[f.name] if f.name in changed else getattr(base, f.name) + 1
        usage = base.with_(**{f.name: value})
        keys.add(calculator._memo_key(SPEC, usage, None, False, "chat", False))
    assert len(keys) == len(fields(Usage)) + 1
