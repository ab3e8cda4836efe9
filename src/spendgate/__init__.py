"""spendgate: price every LLM call exactly, enforce budgets, report spend.

The pricing API is importable from here: :func:`price`, and LiteLLM's
:func:`cost_per_token` and :func:`completion_cost`. Names are loaded on first use, so
``import spendgate`` is cheap; no price data is read and no network is touched until a
call is priced (and even then only the bundled file is read).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not imported from typing: keeps `import spendgate` at ~1 ms

__version__ = "0.1.0"

# Public name → the module that defines it (PEP 562 lazy loading).
_EXPORTS: dict[str, str] = {
    "Adjustment": "spendgate.core.pricing.calculator",
    "Catalogue": "spendgate.core.pricing.catalogue",
    "CatalogueFormatError": "spendgate.errors",
    "ConfigurationError": "spendgate.errors",
    "CostBreakdown": "spendgate.core.pricing.breakdown",
    "MoneyError": "spendgate.errors",
    "PriceBook": "spendgate.core.pricing.catalogue",
    "PriceSpec": "spendgate.core.pricing.spec",
    "PricingError": "spendgate.errors",
    "Rates": "spendgate.core.pricing.spec",
    "SpendgateError": "spendgate.errors",
    "UnpricedModelError": "spendgate.errors",
    "Usage": "spendgate.core.usage.model",
    "UsageError": "spendgate.errors",
    "completion_cost": "spendgate.costs",
    "cost_per_token": "spendgate.costs",
    "default_price_book": "spendgate.costs",
    "format_usd": "spendgate.core.money",
    "from_nano": "spendgate.core.money",
    "parse_rate": "spendgate.core.money",
    "price": "spendgate.costs",
    "register_prices": "spendgate.costs",
    "reset_price_book": "spendgate.costs",
    "to_nano": "spendgate.core.money",
}

__all__ = [
    "Adjustment",
    "Catalogue",
    "CatalogueFormatError",
    "ConfigurationError",
    "CostBreakdown",
    "MoneyError",
    "PriceBook",
    "PriceSpec",
    "PricingError",
    "Rates",
    "SpendgateError",
    "UnpricedModelError",
    "Usage",
    "UsageError",
    "completion_cost",
    "cost_per_token",
    "default_price_book",
    "format_usd",
    "from_nano",
    "parse_rate",
    "price",
    "register_prices",
    "reset_price_book",
    "to_nano",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'spendgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from typing import Any

    from spendgate.core.money import format_usd, from_nano, parse_rate, to_nano
    from spendgate.core.pricing.breakdown import CostBreakdown
    from spendgate.core.pricing.calculator import Adjustment
    from spendgate.core.pricing.catalogue import Catalogue, PriceBook
    from spendgate.core.pricing.spec import PriceSpec, Rates
    from spendgate.core.usage.model import Usage
    from spendgate.costs import (
        completion_cost,
        cost_per_token,
        default_price_book,
        price,
        register_prices,
        reset_price_book,
    )
    from spendgate.errors import (
        CatalogueFormatError,
        ConfigurationError,
        MoneyError,
        PricingError,
        SpendgateError,
        UnpricedModelError,
        UsageError,
    )
