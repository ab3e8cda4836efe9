"""Spend shown in ``general_settings.display_currency`` beside USD (docs/spend-api.md,
"Currency"), at the operator's dated rates (``exchange_rates_file``).

The file is read again when it changes (its modification time), so an operator updates
rates without a restart; a file that cannot be read or parsed keeps the last good table
and says why. A converted figure is a ``display`` object next to the USD ones: the
currency, the rate and the date it is in force from, the rounding, and each amount, so it
can be recomputed from the USD nanos (:mod:`spendgate.core.currency`). The rate used is the
one in force on the last day of the range asked about.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import yaml

from spendgate.core.currency import ROUNDING, RateTable, convert_nanos, parse_rates

__all__ = ["CurrencyDisplay"]

log = logging.getLogger("spendgate.admin")


class CurrencyDisplay:
    """The display currency and its rates file."""

    def __init__(self, currency: str, rates_file: str | Path | None) -> None:
        self.currency = currency
        self.path = Path(rates_file) if rates_file else None
        self._table = RateTable({})
        self._mtime: float | None = None
        self._problem: str | None = None if self.path else "no general_settings.exchange_rates_file"
        self._lock = threading.Lock()

    def table(self) -> RateTable:
        """The rates, read again if the file changed since the last read."""
        if self.path is None:
            return self._table
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            self._problem = f"{self.path}: {exc.strerror}"
            return self._table
        with self._lock:
            if mtime != self._mtime:
                try:
                    self._table = parse_rates(yaml.safe_load(self.path.read_text()))
                    self._problem = None
                except (OSError, ValueError, yaml.YAMLError) as exc:
                    self._problem = f"{self.path}: {exc}"
                    log.warning("exchange rates: %s (keeping the last rates read)", self._problem)
                self._mtime = mtime
        return self._table

    def display(self, day: date, **amounts: int) -> dict[str, Any]:
        """``amounts`` (USD nanos) in the display currency at the rate in force on ``day``."""
        rate = self.table().rate_on(self.currency, day)
        if rate is None:
            why = self._problem or f"no {self.currency} rate dated on or before {day} in {self.path}"
            return {"currency": self.currency, "rate": None, "error": why}
        out: dict[str, Any] = {
            "currency": self.currency,
            "rate": str(rate.rate),
            "rate_date": rate.date.isoformat(),
            "rounding": ROUNDING,
        }
        for name, nanos in amounts.items():
            out[name] = orjson.Fragment(f"{convert_nanos(nanos, rate):f}".encode())
        return out

    def rates(self) -> dict[str, Any]:
        """Every rate of the file (``GET /exchange_rates``)."""
        table = self.table()
        return {
            "display_currency": self.currency,
            "source": str(self.path) if self.path else None,
            "error": self._problem,
            "rounding": ROUNDING,
            "rates": [
                {"currency": r.currency, "rate": str(r.rate), "date": r.date.isoformat()}
                for code in sorted(table.rates)
                for r in table.rates[code]
            ],
        }
