"""Display currencies: USD nano amounts shown in another currency, at dated exchange rates.

The ledger stays in USD (integer nano-USD). A figure is *shown* in another currency by
multiplying its USD nanos by a rate, exactly in :class:`~decimal.Decimal`:

    converted = nanos × rate / 10⁹, rounded half-even to 9 decimal places

(nano-units of the display currency; the only rounding). Each rate is the number of units
of the currency one USD buys, valid from its ``date`` until the next dated rate of the same
currency, so every converted figure names the rate and the date it used and can be
recomputed from the USD nanos. Pure: reading the operator's rates file is the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

__all__ = ["ROUNDING", "ExchangeRate", "RateTable", "convert_nanos", "parse_rates"]

ROUNDING = "half-even to 9 decimal places of the display currency, from the integer USD nanos"
_NANO = Decimal(10) ** 9
_QUANTUM = Decimal(1).scaleb(-9)
_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """``rate`` units of ``currency`` per USD, in force from ``date`` (UTC days)."""

    currency: str
    rate: Decimal
    date: date


def convert_nanos(nanos: int, rate: ExchangeRate) -> Decimal:
    """USD nanos in ``rate.currency``, exactly, rounded as :data:`ROUNDING` says."""
    return (Decimal(nanos) * rate.rate / _NANO).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class RateTable:
    """Dated rates per currency, oldest first."""

    rates: Mapping[str, tuple[ExchangeRate, ...]]

    def rate_on(self, currency: str, day: date) -> ExchangeRate | None:
        """The rate of ``currency`` in force on ``day`` (the latest dated on or before it)."""
        found = None
        for rate in self.rates.get(currency, ()):
            if rate.date > day:
                break
            found = rate
        return found


def parse_rates(data: Any) -> RateTable:
    """A rates document (already parsed from YAML or JSON)::

        rates:
          EUR:
            - {date: 2026-11-01, rate: "0.9412"}   # 1 USD = 0.9412 EUR from 1 November
            - {date: 2026-12-01, rate: "0.9387"}

    Raises:
        ValueError: naming the entry that is not a currency code, a date or a positive rate.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("rates"), Mapping):
        raise ValueError("expected a mapping with 'rates': {CURRENCY: [{date, rate}, …]}")
    out: dict[str, tuple[ExchangeRate, ...]] = {}
    for code, entries in data["rates"].items():
        if not isinstance(code, str) or not _CODE.match(code):
            raise ValueError(f"rates.{code}: not an ISO 4217 code (three capital letters)")
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"rates.{code}: expected a list of {{date, rate}}")
        parsed = [_entry(code, i, entry) for i, entry in enumerate(entries)]
        parsed.sort(key=lambda r: r.date)
        for a, b in pairwise(parsed):
            if a.date == b.date:
                raise ValueError(f"rates.{code}: two rates dated {a.date}")
        out[code] = tuple(parsed)
    return RateTable(out)


def _entry(code: str, index: int, entry: object) -> ExchangeRate:
    where = f"rates.{code}[{index}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected {{date, rate}}")
    day = entry.get("date")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise ValueError(f"{where}.date: not a YYYY-MM-DD date") from None
    if not isinstance(day, date):
        raise ValueError(f"{where}.date: not a YYYY-MM-DD date")
    raw = entry.get("rate")
    try:
        # str() first: a YAML float 0.92 is read as the decimal written, not its binary value.
        rate = Decimal(str(raw)) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else None
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or rate <= 0:
        raise ValueError(f"{where}.rate: not a positive number ({raw!r})")
    return ExchangeRate(code, rate, day)
