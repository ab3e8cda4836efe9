"""spendgate: price every LLM call exactly, enforce budgets, report spend.

The pricing API is importable from here: :func:`price`, and LiteLLM's
:func:`cost_per_token` and :func:`completion_cost`. Importing spendgate loads no price
data and touches no network; the bundled catalogue is read on the first price.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

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
