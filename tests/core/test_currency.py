"""Display currencies (issue #17 item 2): exact conversion of USD nanos at dated rates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from spendgate.core.currency import ExchangeRate, convert_nanos, parse_rates


def test_conversion_is_exact_and_rounded_half_even_to_nine_places() -> None:
    eur = ExchangeRate("EUR", Decimal("0.9412"), date(2026, 12, 1))
    assert convert_nanos(1_000_000_000, eur) == Decimal("0.941200000")  # $1
    assert convert_nanos(123_456_789_012, eur) == Decimal("116.197529818")  # 123.456789012 × 0.9412
    # 1 nano × 0.5 = 0.5 nano-EUR: half-even rounds to 0; 3 × 0.5 = 1.5 → 2.
    half = ExchangeRate("XXX", Decimal("0.5"), date(2026, 1, 1))
    assert (convert_nanos(1, half), convert_nanos(3, half)) == (Decimal("0E-9"), Decimal("2E-9"))
    # Never through a float: a rate float arithmetic cannot hold exactly.
    odd = ExchangeRate("JPY", Decimal("151.37"), date(2026, 1, 1))
    assert convert_nanos(10**18, odd) == Decimal("151370000000.000000000")


def test_the_rate_in_force_is_the_latest_dated_on_or_before_the_day() -> None:
    table = parse_rates(
        {
            "rates": {
                "EUR": [{"date": "2026-12-01", "rate": "0.93"}, {"date": date(2026, 11, 1), "rate": 0.92}]
            }
        }
    )
    assert table.rate_on("EUR", date(2026, 10, 31)) is None
    assert table.rate_on("EUR", date(2026, 11, 30)) == ExchangeRate("EUR", Decimal("0.92"), date(2026, 11, 1))
    assert table.rate_on("EUR", date(2026, 12, 1)).rate == Decimal("0.93")  # type: ignore[union-attr]
    assert table.rate_on("GBP", date(2026, 12, 1)) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "expected a mapping with 'rates'"),
        ({"rates": {"eur": [{"date": "2026-01-01", "rate": "1"}]}}, "rates.eur: not an ISO 4217 code"),
        ({"rates": {"EUR": []}}, "rates.EUR: expected a list"),
        ({"rates": {"EUR": [{"date": "yesterday", "rate": "1"}]}}, r"rates.EUR\[0\].date"),
        ({"rates": {"EUR": [{"date": "2026-01-01", "rate": "-1"}]}}, r"rates.EUR\[0\].rate"),
        ({"rates": {"EUR": [{"date": "2026-01-01", "rate": "NaN"}]}}, r"rates.EUR\[0\].rate"),
        ({"rates": {"EUR": [{"date": "2026-01-01", "rate": True}]}}, r"rates.EUR\[0\].rate"),
        (
            {"rates": {"EUR": [{"date": "2026-01-01", "rate": "1"}, {"date": "2026-01-01", "rate": "2"}]}},
            "two rates dated 2026-01-01",
        ),
    ],
)
def test_a_bad_rates_document_names_the_entry(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rates(data)
