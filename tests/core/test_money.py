from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate.core.money import (
    allocate_nanos,
    format_usd,
    from_nano,
    limit_to_nano,
    parse_rate,
    to_nano,
    usd_text,
)
from spendgate.errors import MoneyError


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("3e-7", D("3e-7")),
        ("0.0000025", D("2.5e-6")),
        ("2.5 per 1M tokens", D("2.5e-6")),
        ("$0.15/1K tokens", D("1.5e-4")),
        ("3 per mtok", D("3e-6")),
        (2.5e-06, D("2.5e-6")),
        (0.1, D("0.1")),  # through repr: exactly one tenth, not 0.1000000000000000055…
        (0, D(0)),
    ],
)
def test_parse_rate(text: object, rate: D) -> None:
    assert parse_rate(text) == rate  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["-1", "abc", "1 per fortnight", "nan", "inf", True, None, [1]])
def test_parse_rate_refuses_what_is_not_a_price(bad: object) -> None:
    with pytest.raises(MoneyError):
        parse_rate(bad)  # type: ignore[arg-type]


def test_to_nano_rounds_half_to_even() -> None:
    assert to_nano(D("0.0000000005")) == 0
    assert to_nano(D("0.0000000015")) == 2
    assert to_nano(D("0.0000000025")) == 2
    assert to_nano(D("-0.0000000015")) == -2
    assert to_nano(D("0.0088375")) == 8_837_500
    assert to_nano(D("12345678.123456789")) == 12_345_678_123_456_789


@given(st.integers(-(2**63), 2**63 - 1))
def test_nano_round_trip_is_exact(n: int) -> None:
    assert to_nano(from_nano(n)) == n


@given(st.lists(st.decimals(min_value=-1, max_value=1000, places=15, allow_nan=False), max_size=15))
def test_allocation_adds_up_and_stays_within_one_nano(parts: list[D]) -> None:
    total = to_nano(sum(parts, D(0)))
    got = allocate_nanos(parts, total)
    assert sum(got) == total
    for exact, n in zip(parts, got, strict=True):
        assert abs(from_nano(n) - exact) < D("1e-9")


def test_format_usd() -> None:
    assert format_usd(D("0.0075")) == "$0.0075"
    assert format_usd(D("3")) == "$3.00"
    assert format_usd(8_837_500) == "$0.0088375"
    assert format_usd(D("-0.5")) == "-$0.50"
    assert format_usd(D("1.23456"), places=2) == "$1.23"


def test_usd_text() -> None:
    assert usd_text(62_500) == "0.0000625"
    assert usd_text(0) == "0"
    assert usd_text(1) == "0.000000001"
    assert usd_text(1_000_000_000) == "1"
    assert usd_text(10_000_000_000) == "10"
    assert usd_text(12_500_000_000) == "12.5"
    assert usd_text(-62_500) == "-0.0000625"
    assert usd_text(-3_000_000_000) == "-3"
    for nanos in (0, 1, 7, 62_500, 999_999_999, 1_000_000_001, 123_456_789_000, -5, -1_500_000_000):
        assert D(usd_text(nanos)) == from_nano(nanos)


def test_a_limit_that_rounds_to_zero_is_refused_and_zero_is_not() -> None:
    for tiny in ("1e-20", "0.0000000005", "0.0000000004999"):
        with pytest.raises(ValueError, match="rounds to 0 nano-USD"):
            limit_to_nano(D(tiny))
    assert limit_to_nano(D(0)) == 0
    assert limit_to_nano(D("0.0000000015")) == 2  # half to even, as to_nano
    assert limit_to_nano(D("0.30000000000000004")) == to_nano(D("0.3"))
