"""``CostBreakdown.total_nanos`` (kept once computed) is
``to_nano(total)`` to the nano, whatever the items: zeros, negatives, more digits than the
context keeps, and under a narrower context."""

from __future__ import annotations

from dataclasses import replace
from decimal import Context, Decimal, localcontext
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import ITEMS, CostBreakdown

amount = st.one_of(
    st.just(Decimal(0)),
    st.just(Decimal("-0")),
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-(10**40), 10**40), st.integers(-45, 2)),
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(0, 999), st.integers(-12, -3)),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(amount, min_size=len(ITEMS), max_size=len(ITEMS)), st.sampled_from([28, 12, 60]))
def test_total_nanos_is_the_rounded_total(values: list[Decimal], precision: int) -> None:
    with localcontext(Context(prec=precision)):
        items: dict[str, Any] = dict(zip(ITEMS, values, strict=True))
        b = CostBreakdown(model="m", priced=True, **items)
        expected = to_nano(b.total)
        assert b.total_nanos == expected
        assert b.total_nanos == expected  # kept


def test_a_changed_copy_computes_its_own_total() -> None:
    b = CostBreakdown(model="m", priced=True, input=Decimal("0.000001"), output=Decimal("0.000002"))
    assert b.total_nanos == 3000
    c = replace(b, discount=Decimal("-0.000001"))
    assert c.total_nanos == 2000
    assert b == replace(c, discount=Decimal(0))  # the kept total is not part of the value
